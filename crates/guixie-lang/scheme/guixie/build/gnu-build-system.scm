;;; Build side of gnu-build-system: phases run in order, each a procedure taking keyword
;;; arguments (#:inputs, #:outputs, #:configure-flags, ...), as in Guix.

(define-module (guixie build gnu-build-system)
  #:use-module (guixie build utils)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases gnu-build))

(define (input-directories inputs)
  (delete-duplicates (map cdr inputs)))

(define* (set-paths #:key inputs #:allow-other-keys)
  (let ((dirs (input-directories inputs)))
    (setenv "PATH" (string-join (append (search-path-as-list '("bin" "sbin") dirs)
                                        '("/usr/bin" "/bin"))
                                ":"))
    (set-path-environment-variable "C_INCLUDE_PATH" '("include") dirs)
    (set-path-environment-variable "CPLUS_INCLUDE_PATH" '("include") dirs)
    (set-path-environment-variable "LIBRARY_PATH" '("lib") dirs)
    (set-path-environment-variable "PKG_CONFIG_PATH" '("lib/pkgconfig" "share/pkgconfig") dirs)
    (setenv "CONFIG_SHELL" "/bin/sh")
    (setenv "SHELL" "/bin/sh")
    (format #t "PATH set to `~a'~%" (getenv "PATH"))))

(define* (unpack #:key source #:allow-other-keys)
  (unless source (error "unpack: this package has no source"))
  (cond
   ((directory-exists? source)
    (copy-recursively source "source")
    (chdir "source"))
   ((tarball? source)
    (mkdir "source")
    (invoke "tar" "-xf" source "-C" "source")
    (chdir "source")
    ;; A tarball with one top directory: build in it.
    (match (scandir* ".")
      (((? directory-exists? top)) (chdir top))
      (_ #t)))
   (else (error "unpack: do not know how to unpack" source))))

(define (scandir* dir)
  (let ((d (opendir dir)))
    (let loop ((names '()))
      (let ((n (readdir d)))
        (if (eof-object? n)
            (begin (closedir d) (sort names string<?))
            (loop (if (member n '("." "..")) names (cons n names))))))))

(define* (configure #:key outputs (configure-flags '()) #:allow-other-keys)
  (if (file-exists? "configure")
      (apply invoke "/bin/sh" "./configure"
             (string-append "--prefix=" (assoc-ref outputs "out"))
             configure-flags)
      (format #t "no ./configure script; nothing to configure~%")))

(define (make-jobs parallel?)
  (if parallel?
      (list (string-append "-j" (or (getenv "NIX_BUILD_CORES") "1")))
      '()))

(define* (build #:key (make-flags '()) (parallel-build? #t) #:allow-other-keys)
  (apply invoke "make" (append (make-jobs parallel-build?) make-flags)))

(define* (check #:key (tests? #t) (test-target "check") (make-flags '()) #:allow-other-keys)
  (if tests?
      (apply invoke "make" test-target make-flags)
      (format #t "tests disabled (#:tests? #f)~%")))

(define* (install #:key (make-flags '()) #:allow-other-keys)
  (apply invoke "make" "install" make-flags))

(define %standard-phases
  `((set-paths . ,set-paths)
    (unpack . ,unpack)
    (configure . ,configure)
    (build . ,build)
    (check . ,check)
    (install . ,install)))

(define* (gnu-build #:key name (phases %standard-phases) #:allow-other-keys #:rest args)
  (format #t "building ~a~%" name)
  (for-each (match-lambda
              ((phase . proc)
               (format #t "starting phase `~a'~%" phase)
               (force-output)
               (let ((start (get-internal-real-time)))
                 (apply proc args)
                 (format #t "phase `~a' succeeded after ~a ms~%" phase
                         (quotient (* 1000 (- (get-internal-real-time) start))
                                   internal-time-units-per-second)))))
            phases)
  #t)
