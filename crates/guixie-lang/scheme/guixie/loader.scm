;;; Evaluates user files: no files, sockets or processes (local data may be mutated),
;;; time-limited, one top-level form at a time without compiling them, errors tagged with
;;; file:line:column.
;;;
;;; Package modules: a file may `(use-modules (my packages))', found as my/packages.scm on
;;; the load path (-L DIR, GUIXIE_LOAD_PATH), itself evaluated in a sandbox module; its
;;; `define-public' definitions (and #:export names) are what it offers.

(define-module (guixie loader)
  #:use-module (ice-9 sandbox)
  #:use-module (guixie primitives)
  #:use-module (guixie derivations)
  #:use-module (guixie gexp)
  #:use-module (guixie packages)
  #:use-module (guixie build-systems)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-11)
  #:use-module (srfi srfi-26)
  #:use-module (ice-9 match)
  #:use-module (ice-9 ftw)
  #:use-module ((system repl repl) #:select (start-repl))
  #:export (load-user-file load-user-string collect-derivations
            package-modules find-packages find-newest-packages describe-package loaded-module-files
            broken-modules set-extensions! start-package-repl
            package-use-modules package-define-module package-define-public
            search-patches search-patch %patch-path specification->package))

(define guixie-bindings
  '(((guixie derivations)
     derivation derivation? derivation-name derivation-file-name derivation-outputs
     derivation-output-path derivation-output derivation-output? builtins-derivation
     text-file store-item? store-item-path
     %current-system store-directory)
    ((guixie gexp)
     gexp ungexp ungexp-splicing ungexp-native ungexp-native-splicing gexp? gexp-input
     local-file local-file? local-file-file plain-file gexp->derivation rust-toolchain
     bootstrap-toolchain)
    ((guixie packages)
     package package? package->derivation package-name package-version package-full-name
     package-source
     package-build-system package-arguments package-inputs package-native-inputs
     package-propagated-inputs package-outputs package-synopsis package-description
     package-license package-home-page package-location
     package-properties package-supported-systems package-native-search-paths
     package-search-paths package/inherit modify-inputs substitute-keyword-arguments
     this-package-input this-package-native-input search-path-specification
     origin origin? origin-uri origin-sha256 origin-file-name url-fetch base32
     origin-patches origin-snippet origin-modules origin-patch-flags %mirrors
     git-fetch git-reference git-reference? git-reference-url git-reference-commit
     git-reference-recursive? git-version git-file-name
     build-system build-system? build-system-name)
    ((guixie build-systems) trivial-build-system gnu-build-system copy-build-system
     cmake-build-system perl-build-system python-build-system pyproject-build-system pypi-uri
     cargo-build-system cargo-lock-crates crate-origin cargo-vendor)
    ((ice-9 match) match match-lambda match-lambda* match-let match-let*)
    ((guixie loader)
     (package-use-modules . use-modules) (package-define-module . define-module)
     (package-define-public . define-public)
     search-patches search-patch %patch-path specification->package)
    ((srfi srfi-1)
     fold fold-right filter-map append-map delete-duplicates last first second third iota
     find any every count remove partition reduce)))

;; Guile's clock (get-internal-real-time, sleep) would make results depend on when a file
;; is evaluated; package files do not get it.
(define impure-clock '(get-internal-real-time internal-time-units-per-second sleep usleep))

(define user-bindings
  (append guixie-bindings
          (map (lambda (set)
                 (cons (car set) (remove (lambda (b) (memq b impure-clock)) (cdr set))))
               all-pure-and-impure-bindings)))

(define (user-module)
  (make-sandbox-module user-bindings))

(define (eval-forms port file module deadline)
  (let loop ((last *unspecified*))
    (let ((form (read port)))
      (if (eof-object? form)
          last
          (let* ((props (source-properties form))
                 (loc (and (assq-ref props 'line)
                           (list file (+ 1 (assq-ref props 'line)) (+ 1 (assq-ref props 'column)))))
                 (remaining (/ (- (+ deadline (toolchain-time)) (get-internal-real-time))
                               internal-time-units-per-second)))
            (loop
             (catch #t
               (lambda ()
                 (when (<= remaining 0)
                   (throw 'limit-exceeded 'time "Time limit exceeded" '() #f))
                 (eval-in-sandbox form #:module module #:sever-module? #f
                                  #:time-limit remaining
                                  #:allocation-limit #e1e10))
               (lambda (key . args)
                 (if (located? key args)
                     (apply throw key args)
                     (throw 'guixie-error #f "~A"
                            (list (string-trim-right (exception->string key args)))
                            (or loc #f)))))))))))

;;; Package modules.

;; The load path of the evaluation under way. A variable, not a parameter: thunked fields
;; (inputs) that name packages by specification run when lowered, after loading.
(define %load-path-now '())
(define (%user-load-path) %load-path-now)
(define %deadline #f)
;; The sandbox module being evaluated, and the names it exports.
(define %loading (make-parameter #f))
(define %exports (make-parameter #f))
;; (module-name . interface), or (module-name . loading) while it loads.
(define %package-modules '())
;; Files of the package modules the current evaluation loaded (for the evaluation cache).
(define %module-files '())
(define (loaded-module-files) (reverse %module-files))

(define (module-name->file name)
  (let ((rel (string-append (string-join (map symbol->string name) "/") ".scm")))
    (any (lambda (dir)
           (let ((f (string-append dir "/" rel)))
             (and (file-exists? f) f)))
         (%user-load-path))))


;; The extensions this instance's quorum accepted: ("NAME" . "FILE") pairs, set before each
;; evaluation. `(guixie ext NAME)' is found only here, never on the load path.
(define %extensions '())
(define (set-extensions! alist) (set! %extensions alist))

(define (extension-file name ext)
  (or (assoc-ref %extensions (symbol->string ext))
      (error (format #f "use-modules: no module ~s: this instance's quorum has not accepted an extension named ~a (~a)"
                     name ext
                     (if (null? %extensions)
                         "it has none"
                         (string-append "it has " (string-join (map car %extensions) ", ")))))))

(define (provided-by-guixie? name)
  (or (assoc name guixie-bindings)
      (match name (('guixie . _) #t) (_ #f))))

;; The pure parts of Guile that package files may use, as Guix's modules do.
(define %pure-guile-modules
  '((srfi srfi-1) (srfi srfi-2) (srfi srfi-8) (srfi srfi-9) (srfi srfi-9 gnu) (srfi srfi-11)
    (srfi srfi-26) (srfi srfi-31) (srfi srfi-34) (srfi srfi-35) (srfi srfi-71)
    (ice-9 match) (ice-9 regex)))

(define (module-spec-error spec fmt . args)
  (error (format #f "use-modules: ~s: ~a" spec (apply format #f fmt args))))

;; A module spec, as Guile takes it: `(a b)' or `((a b) #:select (x (y . z)) #:hide (w)
;; #:prefix p:)'. -> (values name select hide prefix)
(define (parse-module-spec spec)
  (match spec
    (((? symbol?) ..1) (values spec #f '() #f))
    ((((? symbol?) ..1) . options)
     (let loop ((opts options) (select #f) (hide '()) (prefix #f))
       (match opts
         (() (values (car spec) select hide prefix))
         ((#:select (sel ...) . rest)
          (for-each (lambda (x)
                      (unless (or (symbol? x) (and (pair? x) (symbol? (car x)) (symbol? (cdr x))))
                        (module-spec-error spec "#:select takes symbols and (name . new-name) pairs, not ~s" x)))
                    sel)
          (loop rest sel hide prefix))
         ((#:hide ((? symbol? h) ...) . rest) (loop rest select h prefix))
         ((#:prefix (? symbol? p) . rest) (loop rest select hide p))
         ((#:renamer . _)
          (module-spec-error spec "#:renamer is not supported in package files; use #:prefix"))
         (_ (module-spec-error spec "expected #:select, #:hide or #:prefix options")))))
    (_ (module-spec-error spec "not a module name such as (my packages)"))))

;; guixie's modules that package files may use whole (they hold only definitions).
(define %open-guixie-modules '((guixie licenses)))

;; Guix's module names, and the guixie modules that provide what they do.
(define %guix-module-aliases
  '(((guix packages) . (guixie packages))
    ((guix gexp) . (guixie gexp))
    ((guix download) . (guixie packages))
    ((guix utils) . (guixie packages))
    ((guix licenses) . (guixie licenses))
    ((guix build-system) . (guixie packages))
    ((guix git-download) . (guixie packages))
    ((guix search-paths) . (guixie packages))
    ((guix build-system gnu) . (guixie build-systems))
    ((guix build-system trivial) . (guixie build-systems))
    ((guix build-system copy) . (guixie build-systems))
    ((guix build-system cmake) . (guixie build-systems))
    ((guix build-system perl) . (guixie build-systems))
    ((guix build-system python) . (guixie build-systems))
    ((guix build-system pyproject) . (guixie build-systems))
    ((guix build-system cargo) . (guixie build-systems))
    ((gnu packages) . (guixie loader))))

;; `(guix config)': guixie's own values, as Guix's build-time configuration names them.
(define (config-interface)
  (match (%guixie-config)
    ((version state-directory)
     (let ((iface (make-module)))
       (for-each (match-lambda
                   ((name . value) (module-define! iface name value)))
                 `((%guix-package-name . "guixie")
                   (%guix-version . ,version)
                   (%guix-bug-report-address . "guixie's issue tracker")
                   (%guix-home-page-url . "https://guixie.invalid/")
                   (%store-directory . ,(store-directory))
                   (%state-directory . ,state-directory)
                   (%store-database-directory . ,(string-append state-directory "/db"))
                   (%config-directory . ,(string-append (dirname state-directory) "/guixie"))
                   (%system . ,(%current-system))))
       iface))))

;; Guix's patch path: `gnu/packages/patches' and `patches' under each directory of the load
;; path, after the directory of the file being evaluated and its `patches'.
(define (%patch-path)
  (append (let ((here (%current-file-directory)))
            (if here (list here (string-append here "/patches")) '()))
          (append-map (lambda (dir)
                        (list (string-append dir "/gnu/packages/patches")
                              (string-append dir "/patches")))
                      (%user-load-path))))

(define (find-patch location name)
  (or (any (lambda (dir)
             (let ((f (string-append dir "/" name)))
               (and (file-exists? f) f)))
           (%patch-path))
      (guixie-error location "search-patches: no patch ~s in ~a" name
                    (string-join (%patch-path) ":"))))

;; `(search-patches "a.patch" ...)': the patches, as files of the patch path.
(define-syntax search-patches
  (lambda (s)
    (syntax-case s ()
      ((_ name ...)
       #`(let ((loc '#,(datum->syntax s (syntax-location s))))
           (map (lambda (n) (local-file (find-patch loc n))) (list name ...)))))))

(define-syntax search-patch
  (lambda (s)
    (syntax-case s ()
      ((_ name)
       #`(local-file (find-patch '#,(datum->syntax s (syntax-location s)) name))))))

;; Whether version `a' is `b' or a prefix of it by whole components ("1.1" of "1.1.2",
;; not of "1.10"), as Guix's `version-prefix?'.
(define (version-prefix? a b)
  (let loop ((x (string-split a #\.)) (y (string-split b #\.)))
    (match (list x y)
      ((() _) #t)
      ((_ ()) #f)
      (((p . x*) (q . y*)) (and (string=? p q) (loop x* y*))))))

;; `(specification->package "name")' or "name@version": the newest such package of the
;; load path's modules.
(define (specification->package spec)
  (let* ((at (string-index spec #\@))
         (name (if at (substring spec 0 at) spec))
         (version (and at (substring spec (+ 1 at))))
         (found (filter (lambda (p) (or (not version) (version-prefix? version (package-version p))))
                        (find-packages-on-load-path name))))
    (when (null? found)
      (error (format #f "specification->package: no package ~s on the load path" spec)))
    (fold (lambda (p best) (if (version>? (package-version p) (package-version best)) p best))
          (car found) (cdr found))))

;; The interface of a module guixie provides, limited to what package files may see.
(define (guixie-module-interface name)
  (let ((real (resolve-interface name))
        (iface (make-module)))
    (for-each (lambda (b)
                (let* ((sym (if (pair? b) (car b) b))
                       (as (if (pair? b) (cdr b) b))
                       (var (module-variable real sym)))
                  (when var (module-add! iface as var))))
              (or (assoc-ref guixie-bindings name) '()))
    iface))

;; `iface' as `select', `hide' and `prefix' shape it.
(define (shaped-interface spec iface select hide prefix)
  (let ((shaped (make-module))
        (names (module-map (lambda (sym var) sym) iface)))
    (define (add! sym as)
      (let ((var (module-variable iface sym)))
        (unless var
          (module-spec-error spec "the module does not export ~a" sym))
        (unless (memq sym hide)
          (module-add! shaped (if prefix (symbol-append prefix as) as) var))))
    (if select
        (for-each (lambda (x) (if (pair? x) (add! (car x) (cdr x)) (add! x x))) select)
        (for-each (lambda (sym) (add! sym sym)) names))
    shaped))

(define (use-package-module! spec)
  (let-values (((name select hide prefix) (parse-module-spec spec)))
    (define plain? (and (not select) (null? hide) (not prefix)))
    (define (use! iface)
      (unless (%loading) (error "use-modules: not evaluating a package file"))
      (module-use! (%loading)
                   (if plain? iface (shaped-interface spec iface select hide prefix))))
    (cond
     ;; All of a pure module, even one whose commonest names every file already sees.
     ((member name %pure-guile-modules) (use! (resolve-interface name)))
     ((member name %open-guixie-modules) (use! (resolve-interface name)))
     ((equal? name '(guix config)) (use! (config-interface)))
     ((assoc-ref %guix-module-aliases name)
      => (lambda (real)
           (use! (if (member real %open-guixie-modules)
                     (resolve-interface real)
                     (guixie-module-interface real)))))
     ((match name (('guixie 'ext (? symbol? ext)) ext) (_ #f))
      => (lambda (ext) (use! (package-module-interface name (extension-file name ext)))))
     ;; Already in every package file's bindings, unless a spec asks for another shape.
     ((provided-by-guixie? name) (unless plain? (use! (guixie-module-interface name))))
     ((match name (((or 'guile 'srfi 'ice-9 'system 'rnrs 'web) . _) #t) (_ #f))
      (error (format #f "use-modules: ~s is not available in package files (evaluation is pure); they see guixie's modules and the pure parts of Guile: ~a"
                     name (string-join (map (lambda (m) (format #f "~s" m)) %pure-guile-modules)
                                       ", "))))
     (else (use! (package-module-interface name))))))

;; A package module's interface. Modules may use each other in a cycle, as Guix's do: a
;; module reached again while it loads is given its interface at once, which finds the
;; names it exports when they are looked up (in thunked fields such as `inputs', after
;; loading), not when it is used.
(define* (package-module-interface name #:optional file-of-extension)
  (match (assoc-ref %package-modules name)
    (#f
     (let* ((file (or file-of-extension
                      (module-name->file name)
                      (error (format #f "use-modules: no module ~s on the load path (~a); add its directory with -L DIR or GUIXIE_LOAD_PATH"
                                     name (string-join (%user-load-path) ":")))))
            (module (user-module))
            (exports (list '()))
            (iface (make-module 31 '()
                                (lambda (iface sym define?)
                                  (and (not define?) (memq sym (car exports))
                                       (module-variable module sym))))))
       (set! %package-modules (acons name iface %package-modules))
       (set! %module-files (cons file %module-files))
       ;; A module that fails to load is forgotten, so that a later use says why again.
       (catch #t
         (lambda () (load-module-file file module exports))
         (lambda (key . args)
           (set! %package-modules
                 (remove (lambda (e) (equal? (car e) name)) %package-modules))
           (apply throw key args)))
       (for-each (lambda (sym)
                   (let ((var (module-variable module sym)))
                     (unless var
                       (error (format #f "module ~s exports ~a, which it does not define"
                                      name sym)))
                     (module-add! iface sym var)))
                 (delete-duplicates (car exports)))
       (set-module-binder! iface #f)
       iface))
    (iface iface)))

(define-syntax package-use-modules
  (syntax-rules ()
    ((_ name ...) (begin (use-package-module! 'name) ...))))

(define (export! names)
  (let ((box (%exports)))
    (when box (set-car! box (append (car box) names)))))

(define-syntax package-define-public
  (syntax-rules ()
    ((_ (name . formals) body ...)
     (begin (define (name . formals) body ...) (export! '(name))))
    ((_ name value)
     (begin (define name value) (export! '(name))))))

(define (apply-module-clauses! clauses)
  (match clauses
    (() #t)
    ((#:use-module name . rest) (use-package-module! name) (apply-module-clauses! rest))
    ((#:export names . rest) (export! names) (apply-module-clauses! rest))
    (((? keyword?) _ . rest) (apply-module-clauses! rest))
    (_ (error "define-module: expected #:use-module and #:export clauses:" clauses))))

(define-syntax package-define-module
  (syntax-rules ()
    ((_ name clause ...) (apply-module-clauses! '(clause ...)))))

;; -> (values last-value module exported-names); `module' and the `exports' box may be
;; given (the module's interface looks names up in them while it loads).
(define* (load-module-file file #:optional (module (user-module)) (exports (list '())))
  (let* ((port (open-input-file file #:encoding "UTF-8"))
         (value (parameterize ((%current-file-directory (dirname (canonicalize-path file)))
                               (%loading module)
                               (%exports exports))
                  (eval-forms port file module %deadline))))
    (close-port port)
    (values value module (delete-duplicates (car exports)))))

;; Every package module on the load path, as (name . file), sorted by name. Names under
;; (guixie ...) are guixie's own and its accepted extensions': a load-path file never stands
;; in for them.
(define (package-modules)
  (remove (lambda (entry) (match (car entry) (('guixie . _) #t) (_ #f)))
          (package-modules-on-load-path)))

(define (package-modules-on-load-path)
  (append-map
   (lambda (dir)
     (let ((found '()))
       (when (file-exists? dir)
         (ftw dir (lambda (file stat flag)
                    (when (and (eq? flag 'regular) (string-suffix? ".scm" file))
                      (set! found
                            (cons (cons (map string->symbol
                                             (string-split
                                              (string-drop-right
                                               (string-drop file (+ 1 (string-length dir))) 4)
                                              #\/))
                                        file)
                                  found)))
                    #t)))
       (sort found (lambda (a b) (string<? (cdr a) (cdr b))))))
   (%user-load-path)))

(define (deadline-after seconds)
  (+ (get-internal-real-time) (inexact->exact (round (* seconds internal-time-units-per-second)))))

(define (start-evaluation! load-path max-seconds thunk)
  (reset-lowering-caches!)
  (set! %package-modules '())
  (set! %module-files '())
  (set! %broken-modules '())
  (set! %deadline (deadline-after max-seconds))
  (set! %load-path-now load-path)
  (thunk))

;; Lowering runs user code too (thunked fields, G-expression inputs): under the same limit.
(define (within-deadline thunk)
  (let ((remaining (/ (- (+ %deadline (toolchain-time)) (get-internal-real-time))
                      internal-time-units-per-second)))
    (call-with-time-limit (max remaining 0) thunk
                          (lambda ()
                            (throw 'guixie-error #f "~A"
                                   (list (exception->string 'limit-exceeded
                                                            '(#f "Time limit exceeded")))
                                   #f)))))

;; -> (last-value . module)
(define (load-user-file file max-seconds load-path)
  (start-evaluation! load-path max-seconds
    (lambda ()
      (let-values (((value module exports) (load-module-file file)))
        (cons value module)))))

(define (load-user-string text max-seconds load-path)
  (start-evaluation! load-path max-seconds
    (lambda ()
      (let* ((port (open-input-string text))
             (module (user-module)))
        (set-port-filename! port "<expression>")
        (cons (parameterize ((%loading module) (%exports (list '())))
                (eval-forms port "<expression>" module %deadline))
              module)))))

;; `guixie repl': a package file's sandbox module, interactively. It resolves modules as
;; package files do (the load path, Guix's names, the accepted extensions alone for
;; `(guixie ext NAME)'), with read-only store queries for inspection and no time limit (the
;; user at the keyboard interrupts). It is not a boundary against that user: Guile's
;; meta-commands (`,module') can leave it.
(define %repl-store-queries '(valid-path? query-path-info))

(define (start-package-repl load-path)
  (start-evaluation! load-path (* 10 365 24 3600)
    (lambda ()
      (let ((module (user-module)))
        (module-use! module (resolve-interface '(guixie derivations)
                                               #:select %repl-store-queries))
        (parameterize ((%loading module) (%exports (list '())))
          (set-current-module module)
          (start-repl))))))

;; The packages `wanted?' accepts bound in `module', by variable name.
(define (module-packages module wanted?)
  (filter-map (lambda (sym)
                (let ((var (module-variable module sym)))
                  (and var (variable-bound? var) (wanted? (variable-ref var))
                       (variable-ref var))))
              (sort (module-map (lambda (k v) k) module)
                    (lambda (a b) (string<? (symbol->string a) (symbol->string b))))))

;; The packages `wanted?' accepts that the load path's modules export. One broken module
;; does not hide the others' packages; it is reported (`broken-modules').
(define (load-path-packages wanted?)
  (append-map (match-lambda
                ((module-name . file)
                 (catch #t
                   (lambda () (module-packages (package-module-interface module-name) wanted?))
                   (lambda (key . args)
                     (when (eq? key 'limit-exceeded) (apply throw key args))
                     (set! %broken-modules
                           (cons (located-message file key args) %broken-modules))
                     '()))))
              (package-modules)))

(define (find-packages-on-load-path name)
  (delete-duplicates
   (load-path-packages (lambda (v) (and (package? v) (string=? (package-name v) name))))
   eq?))

;; Packages named `name' (every package when `name' is #f) that `file' defines, or, without
;; a file, that the modules on the load path export; as (package . location-string).
(define (find-packages name file max-seconds load-path)
  (define (wanted? v)
    (and (package? v) (or (not name) (string=? (package-name v) name))))
  (start-evaluation! load-path max-seconds
    (lambda ()
      (delete-duplicates
       (if file
           (let-values (((value module exports) (load-module-file file)))
             (append (module-packages module wanted?)
                     (filter wanted? (if (list? value) value (list value)))))
           (load-path-packages wanted?))
       eq?))))

;; Modules of the load path that failed to load in the last lookup, as
;; "file:line:column: message" strings, in load-path order.
(define %broken-modules '())
(define (broken-modules) (reverse %broken-modules))

(define (located-message file key args)
  (match (list key args)
    (('guixie-error (_ _ (message) (where line column)))
     (format #f "~a:~a:~a: ~a" where line column message))
    (_ (format #f "~a: ~a" file (string-trim-right (exception->string key args))))))

;; Versions compared as Guix's `version>?': numeric parts as numbers, others as strings.
(define (version>? a b)
  (let loop ((x (string-tokenize a char-set:letter+digit))
             (y (string-tokenize b char-set:letter+digit)))
    (match (list x y)
      ((() _) #f)
      ((_ ()) #t)
      (((p . x*) (q . y*))
       (let ((m (string->number p)) (n (string->number q)))
         (cond ((and m n (> m n)) #t)
               ((and m n (< m n)) #f)
               ((and (not (and m n)) (string>? p q)) #t)
               ((and (not (and m n)) (string<? p q)) #f)
               (else (loop x* y*))))))))

;; The packages named `name' on the load path, newest version only (as Guix picks one for
;; `guix build NAME'); every version with the highest number if several share it.
(define (find-newest-packages name max-seconds load-path)
  (let* ((all (find-packages name #f max-seconds load-path))
         (best (fold (lambda (p best) (if (or (not best) (version>? (package-version p) best))
                                          (package-version p)
                                          best))
                     #f all)))
    (filter (lambda (p) (equal? (package-version p) best)) all)))

;; A package's fields for `guixie show', as ((field . string) ...).
(define (describe-package p)
  (define (input-names inputs)
    (string-join (map (match-lambda
                        ((label thing output)
                         (if (package? thing)
                             (string-append (package-name thing) "@" (package-version thing)
                                            (if (string=? output "out") "" (string-append ":" output)))
                             label)))
                      inputs)
                 " "))
  (let ((drv (within-deadline (lambda () (lower-object p)))))
    `(("name" . ,(package-name p))
      ("version" . ,(package-version p))
      ("outputs" . ,(string-join (package-outputs p) " "))
      ("systems" . ,(%current-system))
      ("dependencies" . ,(input-names (package-direct-inputs p)))
      ("location" . ,(match (package-location p)
                       ((file line column) (format #f "~a:~a:~a" file line column))
                       (_ "")))
      ("homepage" . ,(or (package-home-page p) ""))
      ("license" . ,(let ((l (package-license p)))
                      (cond ((not l) "")
                            ((list? l) (string-join (map (cut format #f "~a" <>) l) ", "))
                            (else (format #f "~a" l)))))
      ("build-system" . ,(symbol->string (build-system-name (package-build-system p))))
      ("synopsis" . ,(package-synopsis p))
      ("description" . ,(package-description p))
      ("derivation" . ,(derivation-file-name drv))
      ("toolchain" . ,(store-item-path (bootstrap-toolchain)))
      ,@(map (lambda (o) (cons "output" (string-append o " " (derivation-output-path drv o))))
             (package-outputs p)))))

;; Every derivation in a value (a derivation, or nested lists of them), as
;; (name drv-file ((output . path) ...)).
(define (collect-derivations value)
  (within-deadline (lambda () (collect value))))

;; A package's search paths, as (variable separator file ...) lists.
(define (search-paths-of p)
  (map (lambda (spec)
         (cons* (search-path-specification-variable spec)
                (or (search-path-specification-separator spec) ":")
                (filter string? (search-path-specification-files spec))))
       (filter search-path-specification?
               (append (package-native-search-paths p) (package-search-paths p)))))

;; -> ((name drv-file outputs search-paths) ...)
(define (collect value)
  (cond
   ((package? value)
    (map (lambda (found) (append (list-head found 3) (list (search-paths-of value))))
         (collect (lower-object value))))
   ((or (origin? value) (local-file? value))
    (collect (lower-object value)))
   ((derivation? value)
    (list (list (derivation-name value) (derivation-file-name value) (derivation-outputs value)
                '())))
   ((pair? value) (append-map collect (if (list? value) value (list (car value) (cdr value)))))
   (else '())))
