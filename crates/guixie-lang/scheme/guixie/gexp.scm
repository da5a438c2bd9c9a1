;;; G-expressions, as in Guix: code for the build side, with references (`#$x') to
;;; packages, origins, files and derivations that become store paths when the expression is
;;; lowered to a build-side Guile script.

(define-module (guixie gexp)
  #:use-module (guixie primitives)
  #:use-module (guixie derivations)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-9 gnu)
  #:use-module (srfi srfi-11)
  #:use-module (ice-9 match)
  #:use-module (ice-9 ftw)
  #:export (gexp
            ungexp ungexp-splicing ungexp-native ungexp-native-splicing
            gexp?
            gexp-input
            gexp-input?
            local-file
            local-file?
            local-file-file
            plain-file
            register-lowerer!
            lower-object
            gexp->sexp
            sexp->gexp
            gexp->derivation
            build-side-module
            bootstrap-toolchain
            rust-toolchain
            %bootstrap-packages
            %build-tool-packages
            toolchain-time
            %current-file-directory
            set-local-file-root!
            reset-lowering-caches!
            guixie-error
            syntax-location
            located?
            exception->string
            with-location))

;; Whether an exception already says where it happened.
(define (located? key args)
  (case key
    ((read-error) #t)
    ((syntax-error) (and (>= (length args) 3) (pair? (list-ref args 2))))
    ((guixie-error) (and (= (length args) 4) (pair? (list-ref args 3))))
    (else #f)))

(define (exception->string key args)
  (call-with-output-string
    (lambda (port)
      (cond
       ((and (eq? key 'limit-exceeded) (>= (length args) 2))
        (format port "evaluation stopped: ~a (raise --max-eval-seconds or simplify the code)"
                (cadr args)))
       ;; A Rust primitive's error: (subr "~A" (message) location).
       ((and (eq? key 'guixie-error) (= (length args) 4) (pair? (list-ref args 2)))
        (display (car (list-ref args 2)) port))
       (else (print-exception port #f key args))))))


;; The (file line column) of a form, 1-based, for error messages; #f when unknown.
(define (syntax-location stx)
  (let ((src (syntax-source stx)))
    (and src (assq-ref src 'line)
         (list (or (assq-ref src 'filename) "<unknown>")
               (+ 1 (assq-ref src 'line)) (+ 1 (assq-ref src 'column))))))

;; Errors in user-facing procedures: a message with the location of the form at fault.
(define* (guixie-error location fmt . args)
  (throw 'guixie-error #f "~A" (list (apply format #f fmt args)) location))

;; Runs `thunk'; an error that does not say where it happened is reported at `location'
;; (the package or form being lowered), with `what' as context.
(define (with-location location what thunk)
  (catch #t
    thunk
    (lambda (key . args)
      (if (or (located? key args) (not location))
          (apply throw key args)
          (guixie-error location "~a: ~a" what
                        (string-trim-right (exception->string key args)))))))

(define-record-type <gexp>
  (make-gexp tree)
  gexp?
  (tree gexp-tree))

(set-record-type-printer! <gexp>
  (lambda (g port) (format port "#<gexp ~s>" (gexp-tree g))))

;; A reference to lower: a package, origin, file, derivation (with an output) or value.
(define-record-type <gexp-input>
  (%gexp-input thing output native?)
  gexp-input?
  (thing gexp-input-thing)
  (output gexp-input-output)
  (native? gexp-input-native?))

(define* (gexp-input thing #:optional (output "out") #:key native?)
  (%gexp-input thing output native?))

;; `#$output' / `#$output:name': the build's own output, known only inside the build.
(define-record-type <gexp-output>
  (gexp-output name)
  gexp-output?
  (name gexp-output-name))

(define-syntax ungexp (lambda (s) (syntax-violation 'ungexp "used outside a G-expression (#~)" s)))
(define-syntax ungexp-splicing (lambda (s) (syntax-violation 'ungexp-splicing "used outside a G-expression (#~)" s)))
(define-syntax ungexp-native (lambda (s) (syntax-violation 'ungexp-native "used outside a G-expression (#~)" s)))
(define-syntax ungexp-native-splicing (lambda (s) (syntax-violation 'ungexp-native-splicing "used outside a G-expression (#~)" s)))

(define-syntax gexp
  (lambda (s)
    (define (output-id? x)
      (and (identifier? x) (eq? (syntax->datum x) 'output)))
    (define (walk x)
      (syntax-case x (ungexp ungexp-splicing ungexp-native ungexp-native-splicing)
        ((ungexp o) (output-id? #'o) #'(gexp-output "out"))
        ((ungexp o name) (output-id? #'o) #'(gexp-output name))
        ((ungexp-native o) (output-id? #'o) #'(gexp-output "out"))
        ((ungexp e) #'(%gexp-input e "out" #f))
        ((ungexp e out) #'(%gexp-input e out #f))
        ((ungexp-native e) #'(%gexp-input e "out" #t))
        ((ungexp-native e out) #'(%gexp-input e out #t))
        (((ungexp-splicing e) . rest)
         #`(append (map (lambda (i) (if (gexp-input? i) i (%gexp-input i "out" #f))) e)
                   #,(walk #'rest)))
        (((ungexp-native-splicing e) . rest)
         #`(append (map (lambda (i) (if (gexp-input? i) i (%gexp-input i "out" #t))) e)
                   #,(walk #'rest)))
        ((a . b) #`(cons #,(walk #'a) #,(walk #'b)))
        (other #''other)))
    (syntax-case s ()
      ((_ body) #`(make-gexp #,(walk #'body))))))

;; Build-side code given as an s-expression (Guix's old, quoted `arguments'): the objects in
;; it that are not plain data (packages, origins, files, G-expressions) become references, as
;; `#$' would make them; an object that cannot be lowered is refused when it is.
(define (sexp->gexp sexp)
  (define (plain? x)
    (or (string? x) (number? x) (symbol? x) (keyword? x) (boolean? x) (char? x) (null? x)
        (unspecified? x)))
  (define (walk x)
    (cond ((pair? x) (cons (walk (car x)) (walk (cdr x))))
          ((plain? x) x)
          (else (%gexp-input x "out" #f))))
  (make-gexp (walk sexp)))

;; #~ #$ #$@ #+ #+@ as Guix spells them.
(define (install-reader!)
  (define (reader symbol)
    (lambda (chr port) (list symbol (read port))))
  (read-hash-extend #\~ (reader 'gexp))
  (read-hash-extend #\$ (lambda (chr port)
                          (if (eqv? (peek-char port) #\@)
                              (begin (read-char port) (list 'ungexp-splicing (read port)))
                              (list 'ungexp (read port)))))
  (read-hash-extend #\+ (lambda (chr port)
                          (if (eqv? (peek-char port) #\@)
                              (begin (read-char port) (list 'ungexp-native-splicing (read port)))
                              (list 'ungexp-native (read port))))))
(install-reader!)

;;; Files.

;; The directory of the file being evaluated; relative `local-file' names start there.
(define %current-file-directory (make-parameter #f))

(define-record-type <local-file>
  (%local-file file name recursive? location excluded)
  local-file?
  (file local-file-file)
  (name local-file-name)
  (recursive? local-file-recursive?)
  (location local-file-location)
  ;; Full names under `file' that `select?' rejected, left out of the store copy.
  (excluded local-file-excluded))

;; The names under `root' that `(select? file stat)' rejects, as Guix's `local-file' calls it:
;; every entry is asked, and a rejected directory is not entered.
(define (rejected-files root select?)
  (let walk ((dir root) (rejected '()))
    (fold (lambda (name rejected)
            (let* ((file (string-append dir "/" name))
                   (st (lstat file)))
              (cond ((not (select? file st)) (cons file rejected))
                    ((eq? 'directory (stat:type st)) (walk file rejected))
                    (else rejected))))
          rejected
          (or (scandir dir (lambda (n) (not (member n '("." "..")))) string<?) '()))))

(define-syntax local-file
  (lambda (s)
    (syntax-case s ()
      ((_ args ...)
       #`(make-local-file '#,(datum->syntax s (syntax-location s)) args ...))
      (id (identifier? #'id) #'(lambda args (apply make-local-file #f args))))))

(define (basename* file)
  (let ((parts (string-split file #\/)))
    (last (remove string-null? parts))))

(define* (make-local-file location file #:optional (name #f) #:key recursive? select?)
  (unless (string? file)
    (guixie-error location "local-file: expected a file name, got ~s" file))
  (when (and select? (not (procedure? select?)))
    (guixie-error location "local-file ~s: #:select? must be a procedure of a file name and its stat, not ~s"
                  file select?))
  (define (make found)
    (%local-file found (or name (basename* file)) recursive? location
                 (if (and select? recursive? (file-is-directory? found))
                     (rejected-files found select?)
                     '())))
  ;; Relative to the file the form is written in, as Guix's `current-source-directory':
  ;; a thunked field (arguments, inputs) runs after its file has finished loading.
  ;; Its real directory, as the loader's `%current-file-directory' (the process never
  ;; changes directory, so a relative name still means what it meant when it was read).
  (define written-in
    (let ((f (and (pair? location) (car location))))
      ;; Only absolute names: guixie's own compiled modules record relative ones.
      (and (string? f) (string-prefix? "/" f) (file-exists? f)
           (dirname (canonicalize-path f)))))
  (let ((absolute (if (string-prefix? "/" file)
                      file
                      (string-append (or written-in (%current-file-directory) (getcwd))
                                     "/" file))))
    (if %local-file-root
        ;; The canonical name is what is read later, so no link can be repointed between
        ;; this check and the copy into the store.
        (let ((real (false-if-exception (canonicalize-path absolute))))
          (unless (and real (or (string=? real %local-file-root)
                                (string-prefix? (string-append %local-file-root "/") real)))
            (guixie-error location "local-file ~s is outside ~a, the only tree this evaluation may read"
                          file %local-file-root))
          (make real))
        (make absolute))))

;; When set (a canonical directory), `local-file' reads nothing outside it: an untrusted
;; recipe (a proposal's) cannot copy the evaluator's own files into the store.
(define %local-file-root #f)
(define (set-local-file-root! dir) (set! %local-file-root dir))

;; A text file in the store with the given contents.
(define (plain-file name contents)
  (text-file name contents))

;;; Lowering.

;; (predicate . procedure): procedure turns an object into a derivation or store item.
(define %lowerers '())
(define (register-lowerer! predicate procedure)
  (set! %lowerers (cons (cons predicate procedure) %lowerers)))

;; Lowered objects, per evaluation (packages form a DAG: each is lowered once).
(define %lowered (make-hash-table))
(define (reset-lowering-caches!)
  (hash-clear! %lowered)
  (hash-clear! %toolchains)
  (set! %toolchain-time 0)
  (hash-clear! %module-items))

(define (lower-object obj)
  (or (hashq-ref %lowered obj)
      (let ((lowered
             (cond
              ((or (derivation? obj) (store-item? obj)) obj)
              ((local-file? obj)
               (let ((path (catch 'guixie-error
                             (lambda ()
                               (%add-to-store (local-file-name obj) (local-file-file obj)
                                              (local-file-excluded obj)))
                             (lambda (key subr fmt args . rest)
                               (guixie-error (local-file-location obj) "local-file ~s: ~a"
                                             (local-file-file obj) (apply format #f fmt args))))))
                 (make-store-item path)))
              ((find (lambda (l) ((car l) obj)) %lowerers)
               => (lambda (l) ((cdr l) obj)))
              (else #f))))
        (when lowered (hashq-set! %lowered obj lowered))
        lowered)))

;; -> (values sexp inputs) where inputs are derivation inputs: derivations, (drv output)
;; and store items.
(define (gexp->sexp exp)
  (define inputs '())
  (define (add! i) (set! inputs (cons i inputs)))
  (define (lower-input thing output)
    (cond
     ((gexp? thing) (walk (gexp-tree thing)))
     ((gexp-input? thing) (lower-input (gexp-input-thing thing) (gexp-input-output thing)))
     ((or (string? thing) (number? thing) (symbol? thing) (keyword? thing) (boolean? thing)
          (char? thing) (null? thing))
      thing)
     ((pair? thing) (map (lambda (t) (lower-input t output)) thing))
     ((derivation-output? thing)
      (add! thing)
      (derivation-output-file thing))
     ((lower-object thing)
      => (lambda (lowered)
           (cond
            ((store-item? lowered) (add! lowered) (store-item-path lowered))
            ((derivation? lowered)
             (add! (list lowered output))
             (derivation-output-path lowered output))
            (else (error "lowered to neither a derivation nor a store item:" thing)))))
     (else (error "cannot refer to this in a G-expression:" thing))))
  (define (walk tree)
    (cond
     ((gexp-input? tree) (lower-input (gexp-input-thing tree) (gexp-input-output tree)))
     ((gexp-output? tree) `((@ (guile) getenv) ,(gexp-output-name tree)))
     ((pair? tree) (cons (walk (car tree)) (walk (cdr tree))))
     (else tree)))
  (let ((sexp (walk (gexp-tree exp))))
    (values sexp (reverse inputs))))


;;; The bootstrap toolchain and build-side modules.

;; The host's Debian packages the toolchain is made of (with their dependencies): the
;; declared trust root of every build (see docs/bootstrap.md).
(define %bootstrap-packages
  '("bash" "coreutils" "sed" "grep" "mawk" "tar" "gzip" "xz-utils" "findutils" "diffutils"
    "patch" "make" "gcc" "binutils" "libc6-dev" "guile-3.0"))

;; The tools of the build systems beyond gnu's, and of git-fetch, which Guix builds from
;; source: taken from the host too, all in one variant of the toolchain (one copy per
;; store, not one per build system), its own store item named by its NAR hash and pinned
;; the same way.
(define %build-tool-packages
  '("cmake" "perl" "python3" "python3-setuptools" "python3-pip" "python3-wheel" "git"))

(define %toolchains (make-hash-table))
;; Internal time spent making toolchains: not evaluation time (the loader's deadline
;; is extended by it).
(define %toolchain-time 0)
(define (toolchain-time) %toolchain-time)
(define* (bootstrap-toolchain #:optional (extra '()))
  (let ((key (sort (delete-duplicates extra) string<?)))
    (or (hash-ref %toolchains key)
        (let* ((start (get-internal-real-time))
               (item (make-store-item
                      (%bootstrap-toolchain (append %bootstrap-packages key)))))
          (set! %toolchain-time (+ %toolchain-time (- (get-internal-real-time) start)))
          (hash-set! %toolchains key item)
          item))))

;; A Rust release from the host's rustup installation, the trust root of the cargo build
;; system: its files of rustc, cargo and the standard library, named by the NAR hash the
;; recipe pins (see docs/bootstrap.md). Any other tree is refused.
(define (rust-toolchain version sha256)
  (let ((key (list 'rust version sha256)))
    (or (hash-ref %toolchains key)
        (let* ((start (get-internal-real-time))
               (item (make-store-item (%rust-toolchain version sha256))))
          (set! %toolchain-time (+ %toolchain-time (- (get-internal-real-time) start)))
          (hash-set! %toolchains key item)
          item))))

;; Build-side modules, e.g. (guixie build utils), as files in the store.
(define %module-items (make-hash-table))
(define (build-side-module name)
  (or (hash-ref %module-items name)
      (let ((item (text-file (string-append (string-join (map symbol->string name) "-") ".scm")
                             (%build-side-module-source name))))
        (hash-set! %module-items name item)
        item)))

;; guixie's build-side modules, each after those it uses, with the ones it uses.
(define %build-side-modules
  '(((guixie build utils))
    ((guixie build gnu-build-system) (guixie build utils))
    ((guixie build origin) (guixie build utils))
    ((guixie build copy-build-system) (guixie build utils) (guixie build gnu-build-system))
    ((guixie build cmake-build-system) (guixie build utils) (guixie build gnu-build-system))
    ((guixie build perl-build-system) (guixie build utils) (guixie build gnu-build-system))
    ((guixie build python-build-system) (guixie build utils) (guixie build gnu-build-system))
    ((guixie build pyproject-build-system) (guixie build utils) (guixie build gnu-build-system)
     (guixie build python-build-system))
    ((guixie build cargo-build-system) (guixie build utils) (guixie build gnu-build-system))))

;; Guile's own modules, which the build's Guile has: a `#:modules' entry naming one is used,
;; not copied.
(define (guile-module-name? name)
  (memq (car name) '(ice-9 srfi rnrs system web sxml texinfo)))

;; '((guix build utils) (ice-9 match) ...) -> (values guixie-modules-in-load-order
;; guile-modules aliases), where aliases are ((guix build X) . (guixie build X)).
(define (resolve-build-modules modules)
  (define (guixie-name name)
    (match name
      (('guix 'build . rest) (cons* 'guixie 'build rest))
      (_ name)))
  (let* ((guile (filter guile-module-name? modules))
         (asked (map guixie-name (remove guile-module-name? modules)))
         (_ (for-each (lambda (m)
                        (unless (assoc m %build-side-modules)
                          (error (format #f "no build-side module ~s; there are: ~a" m
                                         (string-join (map (lambda (e) (format #f "~s" (car e)))
                                                           %build-side-modules)
                                                      " ")))))
                      asked))
         (wanted (delete-duplicates (append-map (lambda (m) (assoc m %build-side-modules))
                                                asked)))
         (ordered (filter-map (lambda (e) (and (member (car e) wanted) (car e)))
                              %build-side-modules)))
    (values ordered guile
            (map (lambda (m) (cons (cons* 'guix 'build (cddr m)) m)) ordered))))

;; A derivation whose builder is the G-expression `exp', run by the toolchain's Guile with
;; the given build-side modules loaded (Guix's names for them, `(guix build utils)', name
;; them too). The script travels in the derivation itself (`passAsFile'), so it may mention
;; outputs of derivations not yet built.
(define* (gexp->derivation name exp
                           #:key (system (%current-system)) (modules '())
                           (env-vars '()) (outputs '("out"))
                           (toolchain-packages '())
                           hash (hash-algo 'sha256) recursive?)
  (let*-values (((sexp inputs) (gexp->sexp exp))
                ((toolchain) (bootstrap-toolchain toolchain-packages))
                ((ordered guile-modules aliases) (resolve-build-modules modules))
                ((module-items) (map build-side-module ordered))
                ((script)
                 (call-with-output-string
                   (lambda (port)
                     (for-each (lambda (m)
                                 (write `(primitive-load ,(store-item-path m)) port)
                                 (newline port))
                               module-items)
                     (for-each (match-lambda
                                 ((guix-name . guixie-name)
                                  (write `(nested-define-module! (resolve-module '() #f)
                                                                 ',guix-name
                                                                 (resolve-module ',guixie-name))
                                         port)
                                  (newline port)))
                               aliases)
                     (unless (null? guile-modules)
                       (write `(use-modules ,@guile-modules) port)
                       (newline port))
                     (write sexp port)
                     (newline port)))))
    (derivation name (string-append (store-item-path toolchain) "/usr/bin/guile-3.0")
                '("--no-auto-compile" "-c" "(primitive-load (getenv \"guixieBuilderPath\"))")
                #:system system
                #:env-vars (append `(("guixieBuilder" . ,script)
                                     ("passAsFile" . "guixieBuilder")
                                     ("guixieToolchain" . ,(store-item-path toolchain)))
                                   env-vars)
                #:inputs (append (list toolchain) module-items inputs)
                #:outputs outputs
                #:hash hash #:hash-algo hash-algo #:recursive? recursive?)))
