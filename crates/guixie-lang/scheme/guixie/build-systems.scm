;;; Build systems: how a package becomes a derivation. Their build side is Guile running
;;; inside the build (modules `(guixie build ...)'), as in Guix.

(define-module (guixie build-systems)
  #:use-module (guixie derivations)
  #:use-module (guixie gexp)
  #:use-module (guixie packages)
  #:use-module (srfi srfi-1)
  #:use-module (ice-9 match)
  #:use-module (ice-9 textual-ports)
  #:use-module (ice-9 regex)
  #:export (trivial-build-system
            gnu-build-system
            copy-build-system
            cmake-build-system
            perl-build-system
            python-build-system
            pyproject-build-system
            cargo-build-system
            cargo-lock-crates
            crate-origin
            cargo-vendor
            pypi-uri))

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

;; A build system whose build side is the module (guixie build NAME-build-system), run by
;; its procedure `NAME-build' with the package's keyword arguments, as Guix's are; its tools
;; (`toolchain-packages') come from the host as a variant of the bootstrap toolchain.
(define* (phased-build-system name description keywords
                              #:key (toolchain-packages '()))
  (let* ((module (list 'guixie 'build (symbol-append name '-build-system)))
         (entry (symbol-append name '-build)))
    (build-system
     #:name name
     #:description description
     #:lower
     (lambda (p)
       ;; #:host-packages, where a build system takes it, adds Debian packages to its
       ;; toolchain variant; it is not an argument of the build side.
       (let* ((all (arguments->alist p keywords))
              (host-packages (or (assq-ref all #:host-packages) '()))
              (args (alist-delete #:host-packages all)))
         (check-source p)
         (gexp->derivation
          (package-full-name p)
          (gexp (begin
                  (use-modules (guixie build utils) (ungexp module))
                  ((ungexp entry)
                   #:name (ungexp (package-full-name p))
                   #:source (ungexp (package-source p))
                   #:outputs (list (ungexp-splicing (output-gexps p)))
                   #:inputs (list (ungexp-splicing (input-gexps p)))
                   (ungexp-splicing
                    (append-map (match-lambda
                                  ((k . v) (list k (argument->gexp v))))
                                args)))))
          #:modules (list module)
          #:toolchain-packages (append toolchain-packages host-packages)
          #:outputs (package-outputs p)))))))

(define gnu-build-system
  (phased-build-system 'gnu "./configure && make && make check && make install, in Guile phases"
                       %gnu-arguments))

(define copy-build-system
  (phased-build-system 'copy "the source's files copied into the output by #:install-plan"
                       '(#:install-plan #:phases)))

(define cmake-build-system
  (phased-build-system 'cmake "cmake (out of the source tree) && make && make test && make install"
                       '(#:configure-flags #:make-flags #:build-type #:tests? #:test-target
                         #:phases #:parallel-build? #:out-of-source?)
                       #:toolchain-packages %build-tool-packages))

(define perl-build-system
  (phased-build-system 'perl "perl Makefile.PL (or Build.PL) && make && make test && make install"
                       '(#:make-maker-flags #:module-build-flags #:make-flags #:tests?
                         #:phases #:parallel-build?)
                       #:toolchain-packages %build-tool-packages))

(define python-build-system
  (phased-build-system 'python "setup.py build, install and test, programs wrapped"
                       '(#:configure-flags #:tests? #:test-target #:phases)
                       #:toolchain-packages %build-tool-packages))

(define pyproject-build-system
  (phased-build-system 'pyproject "a PEP 517 wheel built, installed and tested, programs wrapped"
                       '(#:configure-flags #:tests? #:test-flags #:phases)
                       #:toolchain-packages %build-tool-packages))

;; Guix's `pypi-uri': the source tarball of a project on PyPI.
(define* (pypi-uri name version #:optional (extension ".tar.gz"))
  (string-append "https://files.pythonhosted.org/packages/source/"
                 (string-take name 1) "/" name "/" name "-" version extension))

;;; Rust.

(define cargo-build-system
  (phased-build-system 'cargo
                       "cargo build --release --offline --frozen against vendored crates (#:vendor) with a pinned Rust (#:rust), #:binaries installed"
                       '(#:rust #:vendor #:binaries #:cargo-build-flags #:tests? #:cargo-test-flags
                         #:phases #:host-packages)))

;; The crates of a Cargo.lock (a local-file) that come from crates.io:
;; ((name version checksum) ...), in the lock file's order. Path and git dependencies
;; are the workspace's own or unsupported; a registry crate without a checksum is refused.
(define %crates-io "registry+https://github.com/rust-lang/crates.io-index")

(define (cargo-lock-crates lock)
  (unless (local-file? lock)
    (error "cargo-lock-crates: expected the lock file as a local-file, got" lock))
  (define file (local-file-file lock))
  ;; Lowered like any local-file, so the evaluation cache sees the lock file change.
  (lower-object lock)
  (define limit (* 16 1024 1024))
  (unless (and (file-exists? file) (eq? 'regular (stat:type (stat file))))
    (error (format #f "~a: the lock file is not a regular file" file)))
  (define text
    (call-with-input-file file
      (lambda (port)
        (let ((text (get-string-n port (+ limit 1))))
          (cond ((eof-object? text) "")
                ((> (string-length text) limit)
                 (error (format #f "~a: a lock file of more than 16 MiB" file)))
                (else text))))))
  (define field (make-regexp "^([a-z]+) = \"([^\"]*)\"$"))
  (define (crate fields)
    (let ((get (lambda (k) (assoc-ref fields k))))
      (define (refuse what)
        (error (format #f "~a: crate ~a ~a: ~a" file (get "name") (get "version") what)))
      (cond
       ((not (get "source")) #f)          ; the workspace's own
       ((not (equal? (get "source") %crates-io))
        (refuse (format #f "source ~s is not crates.io (only crates.io crates are fetched)"
                        (get "source"))))
       (else
        (unless (and (get "checksum") (string-match "^[0-9a-f]{64}$" (get "checksum")))
          (refuse "no sha256 checksum"))
        (unless (string-match "^[A-Za-z0-9_-]+$" (or (get "name") ""))
          (refuse "not a crate name"))
        (unless (string-match "^[0-9A-Za-z.+-]+$" (or (get "version") ""))
          (refuse "not a version"))
        (list (get "name") (get "version") (get "checksum"))))))
  (let loop ((lines (string-split text #\newline)) (current #f) (crates '()))
    (define (done) (if current (cons (crate current) crates) crates))
    (match lines
      (() (filter-map identity (reverse (done))))
      ((raw . rest)
       (let ((line (string-trim-right raw #\return)))
         (cond ((string=? line "[[package]]") (loop rest '() (done)))
               ;; Any other table ([metadata], [[patch.unused]]) ends a package.
               ((string-prefix? "[" line) (loop rest #f (done)))
               ((and current (regexp-exec field line))
                => (lambda (m)
                     (loop rest (acons (match:substring m 1) (match:substring m 2) current)
                           crates)))
               (else (loop rest current crates))))))))

;; A crate's source archive from crates.io, fixed by the checksum Cargo.lock records.
(define (crate-origin name version checksum)
  (origin
    (method url-fetch)
    (uri (string-append "https://static.crates.io/crates/" name "/" name "-" version ".crate"))
    (file-name (string-append name "-" version ".crate"))
    (sha256 checksum)))

;; The directory of crates `cargo build --offline --frozen' reads instead of crates.io: one
;; derivation from every crate's origin, so that builds of one lock file share it.
(define* (cargo-vendor crates #:key (name "cargo-vendor"))
  (gexp->derivation
   name
   (gexp (begin
           (use-modules (guixie build cargo-build-system))
           (vendor-crates
            (ungexp output)
            '(ungexp (map (match-lambda
                            ((name version checksum)
                             (list (string-append name "-" version)
                                   (crate-origin name version checksum)
                                   checksum)))
                          crates)))))
   #:modules '((guixie build cargo-build-system))))
