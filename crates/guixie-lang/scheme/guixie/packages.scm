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
            package-properties package-supported-systems
            package-native-search-paths package-search-paths
            package-direct-inputs package-transitive-inputs
            package/inherit modify-inputs substitute-keyword-arguments
            this-package-input this-package-native-input lookup-package-input
            search-path-specification search-path-specification?
            search-path-specification-variable search-path-specification-files
            search-path-specification-separator
            package->derivation
            origin origin? origin-uri origin-method origin-sha256 origin-file-name
            origin-patches origin-snippet origin-modules origin-patch-flags
            url-fetch %mirrors
            git-fetch git-reference git-reference? git-reference-url git-reference-commit
            git-reference-recursive? git-version git-file-name
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
;; an unbound variable. Their type is checked then too. Each is a procedure of the record
;; it is read from, its `this-package': a variant made with `inherit' sees itself there.
(define %thunked-fields '(arguments inputs native-inputs propagated-inputs))

(define (field-ref record name)
  (let* ((fields (if (package? record) (package-fields record) (origin-fields record)))
         (v (cdr (assq name fields))))
    (if (and (memq name %thunked-fields) (procedure? v))
        (let ((value (with-location (cdr (assq 'location fields))
                                    (format #f "field `~a'" name)
                                    (lambda () (v record)))))
          (check-field (if (package? record) "package" "origin")
                       (assq name (if (package? record) %package-fields %origin-fields))
                       value (cdr (assq 'location fields)))
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
(define (package-properties p) (field-ref p 'properties))
(define (package-supported-systems p) (field-ref p 'supported-systems))
(define (package-native-search-paths p) (field-ref p 'native-search-paths))
(define (package-search-paths p) (field-ref p 'search-paths))
(define (package-full-name p) (string-append (package-name p) "-" (package-version p)))

(set-record-type-printer! <package>
  (lambda (p port) (format port "#<package ~a>" (package-full-name p))))

(define (origin-uri o) (field-ref o 'uri))
(define (origin-method o) (field-ref o 'method))
(define (origin-sha256 o) (field-ref o 'sha256))
(define (origin-file-name o) (field-ref o 'file-name))
(define (origin-location o) (field-ref o 'location))
(define (origin-patches o) (field-ref o 'patches))
(define (origin-snippet o) (field-ref o 'snippet))
(define (origin-modules o) (field-ref o 'modules))
(define (origin-patch-flags o) (field-ref o 'patch-flags))

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
    (properties () ,list? "an association list")
    (supported-systems ("x86_64-linux" "i686-linux" "aarch64-linux" "armhf-linux"
                        "powerpc64le-linux" "riscv64-linux")
                       ,list? "a list of system names")
    (native-search-paths () ,list? "a list of search-path-specification")
    (search-paths () ,list? "a list of search-path-specification")
    (location #f ,any-value? "a location")))

(define %origin-fields
  `((uri #f ,any-value? "a URL string or a list of them")
    (method #f ,procedure? "a fetch method such as url-fetch")
    (sha256 #f ,string? "(base32 \"...\")")
    (file-name #f ,string-or-false? "a string")
    (patches () ,list? "a list of patch files, e.g. (search-patches \"x.patch\")")
    (snippet #f ,any-value? "code run in the unpacked source, quoted or a G-expression")
    (modules () ,list? "a list of build-side module names for the snippet")
    (patch-flags ("-p1") ,list? "a list of strings given to patch")
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
         ;; record they are read from as `this-package' (or `this-origin').
         (with-syntax ((this (datum->syntax s 'self)))
           (syntax-case s ()
             ((_ clause (... ...))
              (let loop ((clauses #'(clause (... ...))) (base #f) (given '()))
                (syntax-case clauses ()
                  (()
                   (with-syntax ((((f v) (... ...)) (reverse given)))
                     #`(let* ((loc '#,(datum->syntax s (syntax-location s)))
                              (f v) (... ...))
                         (make (build-fields kind spec
                                             #,(if base #`(fields-of #,base) #f)
                                             (list (cons 'location loc)
                                                   (cons 'f f) (... ...))
                                             loc)))))
                  (((inherit b) . rest)
                   (eq? (syntax->datum #'inherit) 'inherit)
                   (loop #'rest #'b given))
                  (((field value) . rest)
                   (and (identifier? #'field) (memq (syntax->datum #'field) %thunked-fields))
                   (loop #'rest base (cons #'(field (lambda (this) value)) given)))
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

;; An origin: what its method fetches, then, when it has patches or a snippet, that source
;; unpacked, patched and repacked by a derivation of its own, as Guix's `patch-and-repack'.
(define (origin->derivation o)
  (let ((fetched ((origin-method o) o)))
    (if (and (null? (origin-patches o)) (not (origin-snippet o)))
        fetched
        (patched-source o fetched))))

(define %tarball-extensions
  '(".tar.gz" ".tgz" ".tar.xz" ".txz" ".tar"))

(define (tarball-stem name)
  (any (lambda (ext) (and (string-suffix? ext name) (string-drop-right name (string-length ext))))
       %tarball-extensions))

(define (patched-source o fetched)
  (let* ((name (derivation-name fetched))
         (stem (tarball-stem name))
         (snippet (origin-snippet o))
         (patches (map (lambda (p)
                         (cond ((string? p) (local-file p))
                               ((lower-object p) p)
                               (else (guixie-error (origin-location o)
                                                   "origin: a patch must be a file name, local-file or origin, not ~s"
                                                   p))))
                       (origin-patches o)))
         (flags (origin-patch-flags o)))
    (unless (every string? flags)
      (guixie-error (origin-location o) "origin: patch-flags must be strings, not ~s" flags))
    (gexp->derivation
     (if stem (string-append stem ".tar.xz") name)
     (gexp (begin
             (use-modules (guixie build utils) (guixie build origin)
                          (ungexp-splicing (origin-modules o)))
             (patch-and-repack (ungexp fetched) (list (ungexp-splicing patches)) (ungexp output)
                               #:flags '(ungexp flags)
                               #:snippet (ungexp (and snippet
                                                      (gexp (lambda ()
                                                              (ungexp (if (gexp? snippet)
                                                                          snippet
                                                                          (sexp->gexp snippet)))))))
                               #:tarball-output? (ungexp (and stem #t)))))
     #:modules (cons '(guixie build origin) (origin-modules o)))))

;; Guix's mirror lists, for `mirror://NAME/...' URIs (tried in this order).
(define %mirrors
  '((gnu "https://ftpmirror.gnu.org/gnu/" "https://ftp.gnu.org/gnu/"
         "https://mirrors.kernel.org/gnu/" "https://mirror.cyberbits.eu/gnu/")
    (gnupg "https://gnupg.org/ftp/gcrypt/" "https://mirrors.dotsrc.org/gcrypt/"
           "https://www.mirrorservice.org/sites/ftp.gnupg.org/gcrypt/")
    (gcc "https://gcc.gnu.org/pub/gcc/" "https://ftp.gnu.org/gnu/gcc/")
    (savannah "https://download.savannah.gnu.org/releases/"
              "https://download-mirror.savannah.gnu.org/releases/")
    (sourceforge "https://downloads.sourceforge.net/project/"
                 "https://netcologne.dl.sourceforge.net/project/"
                 "https://freefr.dl.sourceforge.net/project/")
    (kernel.org "https://www.kernel.org/pub/" "https://mirrors.edge.kernel.org/pub/"
                "https://cdn.kernel.org/pub/")
    (apache "https://dlcdn.apache.org/" "https://archive.apache.org/dist/")
    (xorg "https://www.x.org/releases/" "https://xorg.freedesktop.org/releases/")
    (cpan "https://www.cpan.org/" "https://cpan.metacpan.org/")
    (cran "https://cloud.r-project.org/" "https://cran.r-project.org/")
    (debian "https://deb.debian.org/debian/" "https://ftp.debian.org/debian/")
    (gnome "https://download.gnome.org/" "https://ftp.gnome.org/pub/GNOME/")
    (kde "https://download.kde.org/" "https://mirrors.mit.edu/kde/")
    (xfce "https://archive.xfce.org/")
    (hackage "https://hackage.haskell.org/")
    (pypi "https://files.pythonhosted.org/packages/source/")
    (imagemagick "https://imagemagick.org/archive/releases/")))

;; A URI, mirror:// expanded into the mirrors' URLs.
(define (expand-uri uri location)
  (if (string-prefix? "mirror://" uri)
      (let* ((rest (substring uri (string-length "mirror://")))
             (slash (or (string-index rest #\/)
                        (guixie-error location "origin: ~s names no file on the mirror" uri)))
             (name (string->symbol (substring rest 0 slash)))
             (file (substring rest (+ 1 slash))))
        (match (assq name %mirrors)
          ((_ . bases) (map (lambda (base) (string-append base file)) bases))
          (#f (guixie-error location "origin: no mirror list `~a' (there are: ~a)" name
                            (string-join (map (lambda (m) (symbol->string (car m))) %mirrors)
                                         ", ")))))
      (list uri)))

;; A fixed-output derivation fetching the origin's URLs, tried in order, with Nix's
;; `builtin:fetchurl' (run by the sandbox helper itself); its content is checked against
;; the declared sha256.
(define (url-fetch o)
  (let* ((location (origin-location o))
         (uris (match (origin-uri o)
                 ((? string? u) (list u))
                 (((? string?) ..1) (origin-uri o))
                 (other (guixie-error location
                                      "origin: uri must be a URL string or a list of them, not ~s"
                                      other))))
         (urls (append-map (lambda (u) (expand-uri u location)) uris))
         (uri (car uris)))
    (unless (origin-sha256 o)
      (guixie-error location "origin ~a: field `sha256' is missing" uri))
    (derivation (or (origin-file-name o) (basename-of-url (car urls)))
                "builtin:fetchurl" '()
                #:env-vars `(("url" . ,(car urls)) ("urls" . ,(string-join urls " "))
                             ("outputHashMode" . "flat") ("outputHashAlgo" . "sha256")
                             ("outputHash" . ,(origin-sha256 o))
                             ("preferLocalBuild" . "1") ("impureEnvVars" . "http_proxy https_proxy"))
                #:system "builtin"
                #:hash (origin-sha256 o) #:hash-algo 'sha256)))

;;; Git checkouts, as Guix's (guix git-download).

(define-record-type <git-reference>
  (make-git-reference url commit recursive?)
  git-reference?
  (url git-reference-url)
  (commit git-reference-commit)
  (recursive? git-reference-recursive?))

(define (%git-reference location fields)
  (define (get name default)
    (cond ((assq name fields) => cdr) (else default)))
  (for-each (lambda (f)
              (unless (memq (car f) '(url commit recursive?))
                (guixie-error location "git-reference: unknown field `~a' (fields: url, commit, recursive?)"
                              (car f))))
            fields)
  (let ((url (get 'url #f)) (commit (get 'commit #f)))
    (unless (string? url)
      (guixie-error location "git-reference: `url' must be a string, not ~s" url))
    (unless (string? commit)
      (guixie-error location "git-reference: `commit' must be a commit id or tag string, not ~s"
                    commit))
    (make-git-reference url commit (get 'recursive? #f))))

(define-syntax git-reference
  (lambda (s)
    (syntax-case s ()
      ((_ (field value) ...)
       #`(%git-reference '#,(datum->syntax s (syntax-location s))
                         (list (cons 'field value) ...))))))

;; Guix's `git-version': "1.2-3.0123456" for version 1.2, revision 3 of commit 0123456...
(define (git-version version revision commit)
  (string-append version "-" revision "." (string-take commit 7)))

(define (git-file-name name version)
  (string-append name "-" version "-checkout"))

;; A fixed-output derivation checking out the reference's commit with the toolchain's git:
;; the tree without `.git', whose NAR hash is the origin's sha256, as Guix computes it.
(define (git-fetch o)
  (let ((ref (origin-uri o))
        (location (origin-location o)))
    (unless (git-reference? ref)
      (guixie-error location "origin: git-fetch needs (git-reference (url ...) (commit ...)) as uri, not ~s"
                    ref))
    (unless (origin-sha256 o)
      (guixie-error location "origin ~a: field `sha256' is missing" (git-reference-url ref)))
    (gexp->derivation
     (or (origin-file-name o)
         (string-append (basename-of-url (git-reference-url ref)) "-checkout"))
     (gexp (begin
             (use-modules (guixie build utils) (guixie build origin))
             (git-fetch-checkout (ungexp (git-reference-url ref))
                                 (ungexp (git-reference-commit ref))
                                 (ungexp output)
                                 #:recursive? (ungexp (and (git-reference-recursive? ref) #t)))))
     #:modules '((guixie build origin))
     #:toolchain-packages %build-tool-packages
     #:env-vars '(("impureEnvVars" . "http_proxy https_proxy"))
     #:hash (origin-sha256 o) #:hash-algo 'sha256 #:recursive? #t)))

(define (basename-of-url uri)
  (let* ((path (car (string-split uri #\?)))
         (parts (remove string-null? (string-split path #\/))))
    (if (null? parts) "source" (last parts))))

(register-lowerer! package? package->derivation)
(register-lowerer! origin? origin->derivation)

;;; What Guix's package definitions use beside the record itself.

;; An environment variable a package's users need, set from their profile's directories.
(define-record-type <search-path-specification>
  (make-search-path-specification variable files separator file-type file-pattern)
  search-path-specification?
  (variable search-path-specification-variable)
  (files search-path-specification-files)
  (separator search-path-specification-separator)
  (file-type search-path-specification-file-type)
  (file-pattern search-path-specification-file-pattern))

(define (%search-path-specification fields)
  (define (get name default)
    (cond ((assq name fields) => cdr) (else default)))
  (for-each (lambda (f)
              (unless (memq (car f) '(variable files separator file-type file-pattern))
                (error "search-path-specification: unknown field" (car f))))
            fields)
  (let ((variable (get 'variable #f)))
    (unless (string? variable)
      (error "search-path-specification: `variable' must be a string, not" variable))
    (make-search-path-specification variable (get 'files '()) (get 'separator ":")
                                    (get 'file-type 'directory) (get 'file-pattern #f))))

(define-syntax search-path-specification
  (syntax-rules ()
    ((_ (field value) ...)
     (%search-path-specification (list (cons 'field value) ...)))))

;; `(package/inherit p fields ...)': a variant, as `(package (inherit p) fields ...)'.
(define-syntax package/inherit
  (syntax-rules ()
    ((_ base fields ...) (package (inherit base) fields ...))))

;; The input named `name' (a package name or a label) of `p', #f when it has none.
(define* (lookup-package-input p name #:optional (field package-inputs))
  (any (match-lambda
         ((label (? package? thing) output) (and (string=? label name) thing))
         (_ #f))
       (normalise-inputs (field p))))

;; `(this-package-input "name")' in a lazy field: the package's own input of that name.
(define-syntax this-package-input
  (lambda (s)
    (syntax-case s ()
      ((k name)
       (with-syntax ((self (datum->syntax #'k 'this-package)))
         #'(or (lookup-package-input self name)
               (error "this-package-input: no input named" name)))))))

(define-syntax this-package-native-input
  (lambda (s)
    (syntax-case s ()
      ((k name)
       (with-syntax ((self (datum->syntax #'k 'this-package)))
         #'(or (lookup-package-input self name package-native-inputs)
               (error "this-package-native-input: no native input named" name)))))))

;; Guix's `modify-inputs': (modify-inputs inputs (delete "a" ...) (append b ...)
;; (prepend c ...) (replace "d" e)), on inputs given either way (labels or packages).
(define (input-name entry)
  (match entry
    (((? string? label) . _) label)
    ((? package? p) (package-name p))
    (((? package? p) (? string?)) (package-name p))
    (_ #f)))

(define (inputs-delete inputs names)
  (for-each (lambda (n)
              (unless (find (lambda (e) (equal? (input-name e) n)) inputs)
                (error "modify-inputs: no input to delete named" n)))
            names)
  (remove (lambda (e) (member (input-name e) names)) inputs))

(define (inputs-replace inputs name new)
  (unless (find (lambda (e) (equal? (input-name e) name)) inputs)
    (error "modify-inputs: no input to replace named" name))
  (map (lambda (e) (if (equal? (input-name e) name) new e)) inputs))

(define-syntax modify-inputs
  (syntax-rules (delete append prepend replace)
    ((_ inputs) inputs)
    ((_ inputs (delete name ...) clause ...)
     (modify-inputs (inputs-delete inputs (list name ...)) clause ...))
    ((_ inputs (append thing ...) clause ...)
     (modify-inputs (append inputs (list thing ...)) clause ...))
    ((_ inputs (prepend thing ...) clause ...)
     (modify-inputs (append (list thing ...) inputs) clause ...))
    ((_ inputs (replace name new) clause ...)
     (modify-inputs (inputs-replace inputs name new) clause ...))))

;; Guix's `substitute-keyword-arguments': in a `#:key value' list, each
;; `((#:key var) expr)' replaces the value of #:key with expr (var bound to the old value);
;; with `((#:key var default) expr)', a missing #:key is added, var bound to default.
(define (substitute-keyword kw args proc default?)
  (let loop ((rest args) (acc '()))
    (match rest
      (()
       (if default?
           (append (reverse acc) (list kw (proc (cdr default?))))
           (reverse acc)))
      (((? keyword? k) v . more)
       (if (eq? k kw)
           (append (reverse acc) (list k (proc v)) more)
           (loop more (cons* v k acc))))
      (_ (error "substitute-keyword-arguments: not a #:keyword value list:" args)))))

(define-syntax substitute-keyword-arguments
  (syntax-rules ()
    ((_ original) original)
    ((_ original ((kw var default) expr) clause ...)
     (substitute-keyword-arguments
      (substitute-keyword kw original (lambda (var) expr) (cons #t default))
      clause ...))
    ((_ original ((kw var) expr) clause ...)
     (substitute-keyword-arguments
      (substitute-keyword kw original (lambda (var) expr) #f)
      clause ...))))
