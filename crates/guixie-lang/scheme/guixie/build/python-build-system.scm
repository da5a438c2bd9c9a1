;;; Build side of python-build-system: setup.py's build, test and install, then programs
;;; wrapped so that they find their modules, as in Guix. Modules go where the toolchain's
;;; Python (Debian's) looks for them: lib/python3/dist-packages.

(define-module (guixie build python-build-system)
  #:use-module (guixie build utils)
  #:use-module ((guixie build gnu-build-system) #:prefix gnu:)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases python-build site-packages))

(define (site-packages directory)
  (string-append directory "/lib/python3/dist-packages"))

(define* (set-python-paths #:key inputs outputs #:allow-other-keys)
  (setenv "DEB_PYTHON_INSTALL_LAYOUT" "deb_system")
  (setenv "PYTHONDONTWRITEBYTECODE" "1")
  (setenv "PYTHONHASHSEED" "0")
  (set-path-environment-variable "PYTHONPATH" '("lib/python3/dist-packages")
                                 (delete-duplicates
                                  (append (map cdr outputs) (map cdr inputs)))))

(define (build . _)
  (invoke "python3" "setup.py" "build"))

(define* (check #:key (tests? #t) (test-target "test") #:allow-other-keys)
  (cond ((not tests?) (format #t "tests disabled (#:tests? #f)~%"))
        ((file-exists? "setup.py") (invoke "python3" "setup.py" test-target))
        (else (format #t "no setup.py; no tests run~%"))))

(define* (install #:key outputs (configure-flags '()) #:allow-other-keys)
  (apply invoke "python3" "setup.py" "install"
         (string-append "--prefix=" (assoc-ref outputs "out"))
         "--root=/" "--single-version-externally-managed" "--no-compile"
         configure-flags))

;; Each program in bin/ is made to find the output's modules and its inputs'.
(define* (wrap #:key inputs outputs #:allow-other-keys)
  (let ((path (filter file-exists?
                      (map site-packages
                           (delete-duplicates (append (map cdr outputs) (map cdr inputs)))))))
    (for-each (lambda (out)
                (for-each (lambda (program)
                            (unless (string-prefix? "." (basename program))
                              (wrap-program program `("PYTHONPATH" ":" prefix ,path))))
                          (find-files (string-append (cdr out) "/bin"))))
              outputs)))

(define %standard-phases
  (append-map (lambda (phase)
                (case (car phase)
                  ((set-paths) (list phase (cons 'set-python-paths set-python-paths)))
                  ((configure) '())
                  ((build) (list (cons 'build build)))
                  ((check) '())
                  ((install) (list (cons 'install install) (cons 'check check)
                                   (cons 'wrap wrap)))
                  (else (list phase))))
              gnu:%standard-phases))

(define* (python-build #:key (phases %standard-phases) #:allow-other-keys #:rest args)
  (apply gnu:gnu-build #:phases phases args))
