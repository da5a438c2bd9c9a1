;;; Build systems: how a package becomes a derivation. Their build side is Guile running
;;; inside the build (modules `(guixie build ...)'), as in Guix.

(define-module (guixie build-systems)
  #:use-module (guixie derivations)
  #:use-module (guixie gexp)
  #:use-module (guixie packages)
  #:use-module (srfi srfi-1)
  #:use-module (ice-9 match)
  #:export (trivial-build-system
            gnu-build-system))

;; (#:key value ...) -> ((key . value) ...), checking keys against `allowed'.
(define (arguments->alist p allowed)
  (let loop ((args (package-arguments p)) (result '()))
    (match args
      (() (reverse result))
      (((? keyword? k) v . rest)
       (unless (memq k allowed)
         (guixie-error (package-location p) "package ~a: ~a does not take argument ~s (it takes ~a)"
                       (package-full-name p) (build-system-name (package-build-system p)) k
                       (string-join (map (lambda (k) (format #f "~s" k)) allowed) " ")))
       (loop rest (cons (cons k v) result)))
      (_ (guixie-error (package-location p)
                       "package ~a: arguments must be a list of #:keyword value pairs, not ~s"
                       (package-full-name p) (package-arguments p))))))

(define (input-gexps p)
  (map (match-lambda
         ((label thing output)
          (gexp (cons (ungexp label) (ungexp thing output)))))
       (package-transitive-inputs p)))

(define (output-gexps p)
  (map (lambda (o) (gexp (cons (ungexp o) (ungexp output o))))
       (package-outputs p)))

;; A value given in `arguments': G-expressions are build-side code, and so is an
;; s-expression, as Guix's old quoted style writes them (`(modify-phases ...)',
;; `'("--flag")', `%standard-phases'); other values (strings, numbers, booleans, lists of
;; them or of packages) are data.
(define (argument->gexp v)
  (cond ((gexp? v) v)
        ((or (symbol? v) (and (pair? v) (symbol? (car v)))) (sexp->gexp v))
        (else (gexp (quote (ungexp v))))))

(define (check-source p)
  (let ((s (package-source p)))
    (when (and s (not (lower-object s)))
      (guixie-error (package-location p) "package ~a: source must be an origin or a local-file, not ~s"
                    (package-full-name p) s))))

(define trivial-build-system
  (build-system
   #:name 'trivial
   #:description "a G-expression builder (#:builder), with %build-inputs and %outputs"
   #:lower
   (lambda (p)
     (let* ((args (arguments->alist p '(#:builder #:modules)))
            (builder (or (assq-ref args #:builder)
                         (guixie-error (package-location p)
                                       "package ~a: trivial-build-system needs #:builder"
                                       (package-full-name p)))))
       (check-source p)
       (gexp->derivation
        (package-full-name p)
        (gexp (begin
                (define %build-inputs (list (ungexp-splicing (input-gexps p))))
                (define %outputs (list (ungexp-splicing (output-gexps p))))
                (define %output (assoc-ref %outputs "out"))
                (ungexp (argument->gexp builder))))
        #:modules (or (assq-ref args #:modules) '((guixie build utils)))
        #:outputs (package-outputs p))))))

(define %gnu-arguments
  '(#:configure-flags #:make-flags #:tests? #:test-target #:phases #:parallel-build?
    #:out-of-source?))

(define gnu-build-system
  (build-system
   #:name 'gnu
   #:description "./configure && make && make check && make install, in Guile phases"
   #:lower
   (lambda (p)
     (let ((args (arguments->alist p %gnu-arguments)))
       (check-source p)
       (gexp->derivation
        (package-full-name p)
        (gexp (begin
                (use-modules (guixie build utils) (guixie build gnu-build-system))
                (gnu-build #:name (ungexp (package-full-name p))
                           #:source (ungexp (package-source p))
                           #:outputs (list (ungexp-splicing (output-gexps p)))
                           #:inputs (list (ungexp-splicing (input-gexps p)))
                           (ungexp-splicing
                            (append-map (match-lambda
                                          ((k . v) (list k (argument->gexp v))))
                                        args)))))
        #:modules '((guixie build utils) (guixie build gnu-build-system))
        #:outputs (package-outputs p))))))
