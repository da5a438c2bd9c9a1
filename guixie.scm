;;; guixie as a guixie package. `guixie self build' builds the next guixie from this file
;;; and the tree around it; `guixie self check' proves the fixpoint (docs/self-build.md).
;;; The recipe is this tree's own: an older guixie evaluating it gets the same derivation
;;; as the guixie it builds.

(use-modules (guixie packages)
             (guixie gexp)
             (guixie build-systems)
             (guixie licenses))

;; Rust comes from rustup's installation of this release: its files of rustc, cargo and the
;; standard library, pinned by their NAR hash (docs/bootstrap.md).
(define %rust-version "1.95.0")
(define %rust
  (rust-toolchain %rust-version "sha256-5B0fyXzVVeeBaT3Jv6Hscce9kUadehJON/UyMpMaI+I="))

;; What the build reads: the workspace's manifest, lock file and crates. Build products,
;; version control and fuzzing state are not part of the source.
(define (guixie-source-file? file stat)
  (let ((relative (string-drop file (+ 1 (string-length %guixie-root)))))
    (or (member relative '("Cargo.toml" "Cargo.lock" "crates"))
        (and (string-prefix? "crates/" relative)
             (not (any (lambda (part) (member part '("target" ".git")))
                       (string-split relative #\/)))))))

(define %guixie-root (dirname (local-file-file (local-file "Cargo.lock"))))

(define %crates (cargo-lock-crates (local-file "Cargo.lock")))

(define-public guixie
  (package
    (name "guixie")
    (version "0.1.0")
    (source (local-file %guixie-root "guixie-source" #:recursive? #t #:select? guixie-source-file?))
    (build-system cargo-build-system)
    (arguments
     (list #:rust %rust
           #:vendor (cargo-vendor %crates #:name "guixie-crates")
           #:cargo-build-flags '("--release" "-p" "guixie-cli")
           #:binaries '("guixie" "guixie-sandbox")
           ;; guile-sys links libguile through pkg-config; guixie-lang compiles its
           ;; Scheme modules with guild.
           #:host-packages '("guile-3.0-dev" "pkg-config")))
    (home-page "https://guixie.invalid")
    (synopsis "Guix-like package builder whose instances trust each other only on evidence")
    (description "guixie evaluates package definitions written in Guile to Nix-format
derivations, builds them in a sandbox, signs every result into a transparency log, and
changes itself only by a quorum of its members.")
    (license gpl3+)))

guixie
