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

;; One entry of the plan, as Guix's: a file goes to `dest' (into it when `dest' ends with
;; "/"); a directory without filters is installed as `dest/NAME' when `dest' ends with "/"
;; (its contents when the source ends with "/"), else as `dest'; with #:include, #:exclude,
;; #:include-regexp or #:exclude-regexp, the files it keeps go under `dest'.
(define %filter-keys '(#:include #:exclude #:include-regexp #:exclude-regexp))

(define (install-one file target)
  (mkdir-p (dirname target))
  (if (symbolic-link? file)
      (symlink (readlink file) target)
      (copy-file file target)))

(define (install-entry out entry)
  (match entry
    (((? string? source) (? string? dest) . filters)
     (let loop ((f filters))
       (match f
         (() #t)
         (((? keyword? k) (? list?) . rest)
          (unless (memq k %filter-keys)
            (error (format #f "install-plan: ~s: unknown filter ~s (filters: ~s)" entry k
                           %filter-keys)))
          (loop rest))
         (_ (error (format #f "install-plan: ~s: filters are #:include (...) and the like"
                           entry)))))
     (let* ((get (lambda (key) (or (and=> (memq key filters) cadr) '())))
            (include (get #:include)) (exclude (get #:exclude))
            (include-rx (get #:include-regexp)) (exclude-rx (get #:exclude-regexp))
            (filtered? (pair? filters))
            (into? (or (string-suffix? "/" dest) (string-null? dest)))
            (target (string-append out "/" (string-trim dest #\/))))
       (cond
        ((and (directory-exists? source) (not (symbolic-link? source)))
         (let ((base (if (or filtered? (string-suffix? "/" source) (not into?)
                             (member (basename source) '("." "..")))
                         target
                         (string-append target "/" (basename source))))
               (prefix (+ 1 (string-length (string-trim-right source #\/)))))
           (for-each
            (lambda (file)
              (let ((rel (substring file prefix)))
                (when (and (or (and (null? include) (null? include-rx))
                               (matches-any? rel include include-rx))
                           (not (matches-any? rel exclude exclude-rx)))
                  (install-one file (string-append base "/" rel)))))
            (find-files source))))
        ((or (file-exists? source) (symbolic-link? source))
         (install-one source (if into? (string-append target "/" (basename source)) target)))
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
