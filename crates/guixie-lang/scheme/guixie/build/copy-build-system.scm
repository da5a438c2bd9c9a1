;;; Build side of copy-build-system: the source's files copied into the output by an install
;;; plan, as Guix's `#:install-plan' '(("src" "dest" [#:include ...|#:exclude ...]) ...).

(define-module (guixie build copy-build-system)
  #:use-module (guixie build utils)
  #:use-module ((guixie build gnu-build-system) #:prefix gnu:)
  #:use-module (ice-9 match)
  #:use-module (ice-9 regex)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases copy-build))

(define (matches-any? file patterns regexps)
  (or (any (lambda (suffix) (string-suffix? suffix file)) patterns)
      (any (lambda (rx) (string-match rx file)) regexps)))

;; One entry of the plan. A file goes to `dest' (a directory when it ends with "/", as in
;; Guix, or a file name); a directory's files go under `dest', filtered by #:include,
;; #:exclude, #:include-regexp and #:exclude-regexp.
(define (install-entry out entry)
  (match entry
    ((source dest . filters)
     (let* ((get (lambda (key) (or (and=> (memq key filters) cadr) '())))
            (include (get #:include)) (exclude (get #:exclude))
            (include-rx (get #:include-regexp)) (exclude-rx (get #:exclude-regexp))
            (target (string-append out "/" (string-trim dest #\/))))
       (cond
        ((directory-exists? source)
         (for-each
          (lambda (file)
            (let ((rel (substring file (+ 1 (string-length (string-trim-right source #\/))))))
              (when (and (or (and (null? include) (null? include-rx))
                             (matches-any? rel include include-rx))
                         (not (matches-any? rel exclude exclude-rx)))
                (install-file file (dirname (string-append target "/" rel))))))
          (find-files source)))
        ((file-exists? source)
         (if (or (string-suffix? "/" dest) (string-null? dest))
             (install-file source target)
             (begin (mkdir-p (dirname target)) (copy-file source target))))
        (else (error (format #f "install-plan: the source has no ~a" source))))))
    (_ (error "install-plan: expected (\"source\" \"destination\" [#:include ...]), got" entry))))

(define* (install #:key outputs (install-plan '(("." "./"))) #:allow-other-keys)
  (let ((out (assoc-ref outputs "out")))
    (mkdir-p out)
    (for-each (lambda (entry) (install-entry out entry)) install-plan)))

(define %standard-phases
  `((set-paths . ,(assq-ref gnu:%standard-phases 'set-paths))
    (unpack . ,(assq-ref gnu:%standard-phases 'unpack))
    (install . ,install)))

(define* (copy-build #:key (phases %standard-phases) #:allow-other-keys #:rest args)
  (apply gnu:gnu-build #:phases phases args))
