;;; Packages and origins shaped like Guix's, lowered to derivations through their build
;;; system.

(define-module (guixie packages)
  #:use-module (guixie primitives)
  #:use-module (guixie derivations)
  #:use-module (guixie gexp)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-9 gnu)
  #:use-module (ice-9 match)
  #:export (package
            package?
            package-name package-version package-full-name package-source
            package-build-system package-arguments package-inputs package-native-inputs
            package-propagated-inputs package-outputs package-synopsis package-description
            package-license package-home-page package-location
            package-direct-inputs package-transitive-inputs
            package->derivation
            origin origin? origin-uri origin-method origin-sha256 origin-file-name
            url-fetch
            base32
            build-system build-system? build-system-name build-system-lower))

;;; Build systems: a name and a procedure (package -> derivation).
(define-record-type <build-system>
  (%build-system name description lower)
  build-system?
  (name build-system-name)
  (description build-system-description)
  (lower build-system-lower))

(set-record-type-printer! <build-system>
  (lambda (b port) (format port "#<build-system ~a>" (build-system-name b))))

(define* (build-system #:key name description lower)
  (%build-system name description lower))

;;; Record syntax with named fields and `(inherit base)', as Guix's `define-record-type*'.

(define-record-type <package>
  (make-package fields)
  package?
  (fields package-fields))

(define-record-type <origin>
  (make-origin fields)
  origin?
  (fields origin-fields))

;; Thunked fields (inputs, arguments) are evaluated when used, as in Guix: packages may
;; refer to packages defined after them, and a cycle is reported when lowering, not hit as
;; an unbound variable. Their type is checked then too.
(define %thunked-fields '(arguments inputs native-inputs propagated-inputs))

(define (field-ref record name)
  (let* ((fields (if (package? record) (package-fields record) (origin-fields record)))
         (v (cdr (assq name fields))))
    (if (and (memq name %thunked-fields) (procedure? v))
        (let ((value (with-location (cdr (assq 'location fields))
                                    (format #f "field `~a'" name) v)))
          (check-field "package" (assq name %package-fields) value (cdr (assq 'location fields)))
          value)
        v)))

(define (package-name p) (field-ref p 'name))
(define (package-version p) (field-ref p 'version))
(define (package-source p) (field-ref p 'source))
(define (package-build-system p) (field-ref p 'build-system))
(define (package-arguments p) (field-ref p 'arguments))
(define (package-inputs p) (field-ref p 'inputs))
(define (package-native-inputs p) (field-ref p 'native-inputs))
(define (package-propagated-inputs p) (field-ref p 'propagated-inputs))
(define (package-outputs p) (field-ref p 'outputs))
(define (package-synopsis p) (field-ref p 'synopsis))
(define (package-description p) (field-ref p 'description))
(define (package-license p) (field-ref p 'license))
(define (package-home-page p) (field-ref p 'home-page))
(define (package-location p) (field-ref p 'location))
(define (package-full-name p) (string-append (package-name p) "-" (package-version p)))

(set-record-type-printer! <package>
  (lambda (p port) (format port "#<package ~a>" (package-full-name p))))

(define (origin-uri o) (field-ref o 'uri))
(define (origin-method o) (field-ref o 'method))
(define (origin-sha256 o) (field-ref o 'sha256))
(define (origin-file-name o) (field-ref o 'file-name))
(define (origin-location o) (field-ref o 'location))

(define (any-value? x) #t)
(define (string-or-false? x) (or (not x) (string? x)))
(define (outputs? x) (and (pair? x) (every string? x)))

;; (field default check what): `check' accepts #f where a field may be left out.
(define %package-fields
  `((name #f ,string? "a string")
    (version #f ,string? "a string")
    (source #f ,any-value? "an origin, local-file or #f")
    (build-system #f ,build-system? "a build system such as gnu-build-system")
    (arguments () ,list? "a list such as (list #:tests? #f)")
    (inputs () ,list? "a list of packages")
    (native-inputs () ,list? "a list of packages")
    (propagated-inputs () ,list? "a list of packages")
    (outputs ("out") ,outputs? "a non-empty list of output names")
    (synopsis "" ,string? "a string")
    (description "" ,string? "a string")
    (license #f ,any-value? "a license")
    (home-page #f ,string-or-false? "a URL string")
    (location #f ,any-value? "a location")))

(define %origin-fields
  `((uri #f ,any-value? "a URL string or a list of them")
    (method #f ,procedure? "a fetch method such as url-fetch")
    (sha256 #f ,string? "(base32 \"...\")")
    (file-name #f ,string-or-false? "a string")
    (location #f ,any-value? "a location")))

(define (check-field kind field value location)
  (match field
    ((name default check what)
     (unless (check value)
       (guixie-error location
                     (if value
                         "~a: field `~a' must be ~a, not ~s"
                         "~a: field `~a' is missing; it must be ~a")
                     kind name what value)))))

(define (build-fields kind spec base given location)
  (for-each (lambda (g)
              (unless (assq (car g) spec)
                (guixie-error location "~a: unknown field `~a' (fields: ~a)" kind (car g)
                              (string-join (map (lambda (f) (symbol->string (car f)))
                                                (filter (lambda (f) (not (eq? (car f) 'location)))
                                                        spec))
                                           ", "))))
            given)
  (map (lambda (f)
         (match f
           ((name default check what)
            (let ((value (cond ((assq name given) => cdr)
                               (base (cdr (assq name base)))
                               (else default))))
              (unless (and (memq name %thunked-fields) (procedure? value))
                (check-field kind f value location))
              (cons name value)))))
       spec))

(define-syntax define-record-syntax
  (syntax-rules ()
    ((_ keyword kind spec make fields-of self)
     (define-syntax keyword
       (lambda (s)
         ;; As Guix's records: a field's value may use the fields given before it by their
         ;; names (`(string-append name "-" version)'), and thunked fields may use the
         ;; record being made as `this-package' (or `this-origin').
         (with-syntax ((this (datum->syntax s 'self)))
           (syntax-case s ()
             ((_ clause (... ...))
              (let loop ((clauses #'(clause (... ...))) (base #f) (given '()))
                (syntax-case clauses ()
                  (()
                   (with-syntax ((((f v) (... ...)) (reverse given)))
                     #`(letrec ((this
                                 (let* ((loc '#,(datum->syntax s (syntax-location s)))
                                        (f v) (... ...))
                                   (make (build-fields kind spec
                                                       #,(if base #`(fields-of #,base) #f)
                                                       (list (cons 'location loc)
                                                             (cons 'f f) (... ...))
                                                       loc)))))
                         this)))
                  (((inherit b) . rest)
                   (eq? (syntax->datum #'inherit) 'inherit)
                   (loop #'rest #'b given))
                  (((field value) . rest)
                   (and (identifier? #'field) (memq (syntax->datum #'field) %thunked-fields))
                   (loop #'rest base (cons #'(field (lambda () value)) given)))
                  (((field value) . rest)
                   (identifier? #'field)
                   (loop #'rest base (cons #'(field value) given)))
                  ((bad . rest)
                   (syntax-violation 'kind "expected (field value) or (inherit record)"
                                     s #'bad))))))))))))

(define-record-syntax package "package" %package-fields make-package package-fields this-package)
(define-record-syntax origin "origin" %origin-fields make-origin origin-fields this-origin)

;; Guix's (base32 "...") names a hash in Nix's base32; the primitives take that form as is.
(define (base32 str)
  (unless (and (string? str) (= (string-length str) 52))
    (error "base32: expected the 52-character Nix base32 form of a sha256, got" str))
  str)

;;; Inputs.

;; Inputs are given as Guix does today, `(list a b)', or with labels, `(("a" ,a) ...)'.
;; -> ((label thing output) ...)
(define (normalise-inputs inputs)
  (map (match-lambda
         (((? string? label) thing) (list label thing "out"))
         (((? string? label) thing (? string? output)) (list label thing output))
         ((? package? p) (list (package-name p) p "out"))
         (((? package? p) (? string? output)) (list (package-name p) p output))
         ((? origin? o) (list (or (origin-file-name o) "source") o "out"))
         ((? local-file? f) (list "file" f "out"))
         (other (error "not an input (a package, or (\"label\" package)):" other)))
       inputs))

(define (package-direct-inputs p)
  (append (normalise-inputs (package-native-inputs p))
          (normalise-inputs (package-inputs p))
          (normalise-inputs (package-propagated-inputs p))))

;; Direct inputs and, transitively, the propagated inputs of package inputs.
(define (package-transitive-inputs p)
  (let loop ((todo (package-direct-inputs p)) (seen '()))
    (match todo
      (() (reverse seen))
      (((and entry (label thing output)) . rest)
       (if (find (lambda (s) (eq? (cadr s) thing)) seen)
           (loop rest seen)
           (loop (append rest (if (package? thing)
                                  (normalise-inputs (package-propagated-inputs thing))
                                  '()))
                 (cons entry seen)))))))

;;; Lowering.

;; Packages being lowered, to report a cycle instead of looping.
(define %in-progress (make-parameter '()))

(define (package->derivation p)
  (when (memq p (%in-progress))
    (guixie-error (package-location p) "dependency cycle: ~a"
                  (string-join (map package-full-name (reverse (cons p (%in-progress)))) " -> ")))
  (parameterize ((%in-progress (cons p (%in-progress))))
    (with-location (package-location p) (string-append "package " (package-full-name p))
                   (lambda () ((build-system-lower (package-build-system p)) p)))))

(define (origin->derivation o)
  ((origin-method o) o))

;; A fixed-output derivation fetching the origin's URL with Nix's `builtin:fetchurl' (run by
;; the builder itself); its content is checked against the declared sha256.
(define (url-fetch o)
  (let ((uri (match (origin-uri o)
               ((? string? u) u)
               (((? string? u) . _) u)
               (other (guixie-error (origin-location o) "origin: uri must be a URL string, not ~s"
                                    other)))))
    (unless (origin-sha256 o)
      (guixie-error (origin-location o) "origin ~a: field `sha256' is missing" uri))
    (derivation (or (origin-file-name o) (basename-of-url uri))
                "builtin:fetchurl" '()
                #:env-vars `(("url" . ,uri) ("urls" . ,uri)
                             ("outputHashMode" . "flat") ("outputHashAlgo" . "sha256")
                             ("outputHash" . ,(origin-sha256 o))
                             ("preferLocalBuild" . "1") ("impureEnvVars" . "http_proxy https_proxy"))
                #:system "builtin"
                #:hash (origin-sha256 o) #:hash-algo 'sha256)))

(define (basename-of-url uri)
  (let* ((path (car (string-split uri #\?)))
         (parts (remove string-null? (string-split path #\/))))
    (if (null? parts) "source" (last parts))))

(register-lowerer! package? package->derivation)
(register-lowerer! origin? origin->derivation)
