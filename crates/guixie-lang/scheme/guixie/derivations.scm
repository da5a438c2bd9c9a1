;;; Host side: derivations as Scheme values, lowered by Rust primitives to `.drv` files.

(define-module (guixie derivations)
  #:use-module (guixie primitives)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-9 gnu)
  #:use-module (ice-9 match)
  #:export (derivation
            derivation?
            derivation-name
            derivation-file-name
            derivation-outputs
            derivation-output-path
            derivation-output
            derivation-output?
            builtins-derivation
            %current-system
            store-directory))

(define %current-system (make-parameter "x86_64-linux"))

(define (store-directory) (%store-dir))

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

;; One named output of a derivation, usable wherever a derivation is (input, env value).
(define-record-type <derivation-output>
  (derivation-output drv output)
  derivation-output?
  (drv derivation-output-derivation)
  (output derivation-output-name))

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
         (sources (filter string? inputs))
         (result (%derivation name system builder args env-vars
                              (group-inputs pairs) sources outputs
                              (and hash (list (symbol->string hash-algo) hash recursive?)))))
    (make-derivation (car result) name (cdr result))))

;; Nix's `builtins.derivation': every attribute becomes an environment variable (except
;; `args'), derivations in values become their output paths and inputs, lists are joined
;; with spaces, #t is "1", #f is "". `attrs' is an alist of (symbol-or-string . value).
(define (builtins-derivation attrs)
  (define inputs '())
  (define (->string v)
    (match v
      ((? string?) v)
      ((? symbol?) (symbol->string v))
      ((? number?) (number->string v))
      (#t "1")
      (#f "")
      (() "")
      ((? derivation? d) (set! inputs (cons d inputs)) (derivation-output-path d))
      ((? derivation-output? o)
       (set! inputs (cons o inputs))
       (derivation-output-path (derivation-output-derivation o) (derivation-output-name o)))
      ((? list? l) (string-join (map ->string l) " "))
      (_ (error "cannot turn into a derivation attribute:" v))))
  (define (attr name)
    (let ((entry (find (lambda (a) (equal? (->key (car a)) name)) attrs)))
      (and entry (cdr entry))))
  (define (->key k) (if (symbol? k) (symbol->string k) k))
  (let* ((name (or (attr "name") (error "builtins-derivation: missing attribute `name'")))
         (builder (->string (or (attr "builder") (error "builtins-derivation: missing attribute `builder'"))))
         (system (->string (or (attr "system") (error "builtins-derivation: missing attribute `system'"))))
         (args (map ->string (or (attr "args") '())))
         (outputs (map ->string (or (attr "outputs") '("out"))))
         (env (filter-map (lambda (a)
                            (let ((k (->key (car a))))
                              (and (not (string=? k "args"))
                                   (cons k (->string (cdr a))))))
                          attrs))
         (mode (attr "outputHashMode"))
         (hash (attr "outputHash")))
    (derivation name builder args
                #:system system #:env-vars env #:inputs inputs #:outputs outputs
                #:hash hash
                #:hash-algo (string->symbol (or (attr "outputHashAlgo") "sha256"))
                #:recursive? (equal? mode "recursive"))))
