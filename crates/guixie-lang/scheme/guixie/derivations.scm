;;; Host side: derivations as Scheme values, lowered by Rust primitives to `.drv` files.

(define-module (guixie derivations)
  #:use-module (guixie primitives)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-9 gnu)
  #:use-module (srfi srfi-11)
  #:use-module (ice-9 match)
  #:export (derivation
            derivation?
            derivation-name
            derivation-file-name
            derivation-outputs
            derivation-output-path
            derivation-output
            derivation-output?
            derivation-output-derivation
            derivation-output-name
            derivation-output-file
            builtins-derivation
            text-file
            store-item?
            make-store-item
            store-item-path
            %current-system
            store-directory
            valid-path?
            query-path-info))

(define %current-system (make-parameter "x86_64-linux"))

(define (store-directory) (%store-dir))

;; What the store knows of a path: #f, or (nar-hash nar-size references deriver). Not
;; available to package files, whose evaluation must not depend on the store's contents;
;; for the REPL and guixie's own modules.
(define (query-path-info path) (%query-path-info path))
(define (valid-path? path) (and (%query-path-info path) #t))

;; A derivation once written: its .drv path, name and ((output . path) ...).
(define-record-type <derivation>
  (make-derivation file-name name outputs)
  derivation?
  (file-name derivation-file-name)
  (name derivation-name)
  (outputs derivation-outputs))

(set-record-type-printer! <derivation>
  (lambda (d port)
    (format port "#<derivation ~a>" (derivation-file-name d))))

;; A file already destined for the store (e.g. from `text-file'); usable as an input source
;; and as a derivation attribute, like a Nix string with context.
(define-record-type <store-item>
  (make-store-item path)
  store-item?
  (path store-item-path))

;; Nix's `builtins.toFile': a text file in the store, named NAME.
(define* (text-file name contents #:optional (references '()))
  (make-store-item (%text-file name contents references)))

;; One named output of a derivation, usable wherever a derivation is (input, env value).
(define-record-type <derivation-output>
  (derivation-output drv output)
  derivation-output?
  (drv derivation-output-derivation)
  (output derivation-output-name))

;; The store path of a `derivation-output'.
(define (derivation-output-file o)
  (derivation-output-path (derivation-output-derivation o) (derivation-output-name o)))

(define* (derivation-output-path drv #:optional (output "out"))
  (or (assoc-ref (derivation-outputs drv) output)
      (error "derivation has no such output:" (derivation-name drv) output)))

(define (input->pair input)
  ;; -> (drv-file . output-name), or #f for a plain store path (an input source).
  (match input
    ((? derivation? d) (cons (derivation-file-name d) "out"))
    ((? derivation-output? o)
     (cons (derivation-file-name (derivation-output-derivation o)) (derivation-output-name o)))
    (((? derivation? d) (? string? output)) (cons (derivation-file-name d) output))
    ((? string?) #f)
    ((? store-item?) #f)
    (_ (error "not a derivation input (derivation, (derivation \"output\") or store path):" input))))

(define (group-inputs pairs)
  ;; ((drv . out) ...) -> ((drv out ...) ...), outputs unique.
  (fold (lambda (p acc)
          (let ((entry (assoc (car p) acc)))
            (if entry
                (begin (unless (member (cdr p) (cdr entry))
                         (set-cdr! entry (cons (cdr p) (cdr entry))))
                       acc)
                (cons (list (car p) (cdr p)) acc))))
        '() pairs))

;; The low-level procedure, shaped like Guix's `derivation': every environment variable is
;; explicit; the outputs' variables (`out', …) are filled in.
(define* (derivation name builder args
                     #:key (system (%current-system)) (env-vars '()) (inputs '())
                     (outputs '("out")) hash (hash-algo 'sha256) recursive?)
  (let* ((pairs (filter-map input->pair inputs))
         (sources (filter-map (lambda (i) (cond ((string? i) i)
                                                 ((store-item? i) (store-item-path i))
                                                 (else #f)))
                              inputs))
         (result (%derivation name system builder args env-vars
                              (group-inputs pairs) sources outputs
                              (and hash (list (symbol->string hash-algo) hash recursive?)))))
    (make-derivation (car result) name (cdr result))))

;; Nix's `builtins.derivation': every attribute becomes an environment variable (except
;; `args'), derivations in values become their output paths and inputs, lists are joined
;; with spaces, #t is "1", #f is "". `attrs' is an alist of (symbol-or-string . value).

;; -> (values string inputs), consing any derivation found in `v' onto `inputs'.
(define (attribute->string v inputs)
  (cond
   ((string? v) (values v inputs))
   ((derivation? v) (values (derivation-output-path v) (cons v inputs)))
   ((derivation-output? v) (values (derivation-output-file v) (cons v inputs)))
   ((store-item? v) (values (store-item-path v) (cons v inputs)))
   ((symbol? v) (values (symbol->string v) inputs))
   ((number? v) (values (number->string v) inputs))
   ((eq? v #t) (values "1" inputs))
   ((or (eq? v #f) (null? v)) (values "" inputs))
   ((list? v)
    (let-values (((strings inputs) (attributes->strings v inputs)))
      (values (string-join strings " ") inputs)))
   (else (error "cannot turn into a derivation attribute:" v))))

(define (attributes->strings items inputs)
  (let loop ((items items) (strings '()) (inputs inputs))
    (if (null? items)
        (values (reverse strings) inputs)
        (let-values (((s inputs) (attribute->string (car items) inputs)))
          (loop (cdr items) (cons s strings) inputs)))))

;; One pass over the attributes: this runs once per package of a large graph.
(define (builtins-derivation attrs)
  (let loop ((attrs attrs) (env '()) (inputs '()) (args '()))
    (if (pair? attrs)
        (let ((key (let ((k (caar attrs))) (if (symbol? k) (symbol->string k) k)))
              (value (cdar attrs)))
          (if (string=? key "args")
              (let-values (((strings inputs) (attributes->strings value inputs)))
                (loop (cdr attrs) env inputs strings))
              (let-values (((str inputs) (attribute->string value inputs)))
                (loop (cdr attrs) (cons (cons key str) env) inputs args))))
        (let ((get (lambda (key) (assoc-ref env key))))
          (derivation (or (get "name") (error "builtins-derivation: missing attribute `name'"))
                      (or (get "builder") (error "builtins-derivation: missing attribute `builder'"))
                      args
                      #:system (or (get "system") (error "builtins-derivation: missing attribute `system'"))
                      #:env-vars env
                      #:inputs inputs
                      #:outputs (let ((o (get "outputs"))) (if o (string-split o #\space) '("out")))
                      #:hash (get "outputHash")
                      #:hash-algo (string->symbol (or (get "outputHashAlgo") "sha256"))
                      #:recursive? (equal? (get "outputHashMode") "recursive"))))))
