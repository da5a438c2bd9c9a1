;;; Build side of cargo-build-system: `cargo build --release --offline --frozen' against a
;;; vendored directory of the lock file's crates, with nothing that varies between builds
;;; (paths remapped, SOURCE_DATE_EPOCH, no incremental state), then the named binaries
;;; installed. gnu-build-system's set-paths and unpack come first, as in Guix.

(define-module (guixie build cargo-build-system)
  #:use-module (guixie build utils)
  #:use-module ((guixie build gnu-build-system) #:prefix gnu:)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases cargo-build vendor-crates))

;; ((directory-name crate-file checksum) ...) -> a directory source for cargo at `out': each
;; crate unpacked under its name, with the checksum Cargo.lock records (cargo compares the
;; two under --frozen).
(define (vendor-crates out crates)
  (setenv "PATH" "/usr/bin:/bin")
  (mkdir-p out)
  (for-each (match-lambda
              ((name crate checksum)
               (let ((dir (string-append out "/" name)))
                 (mkdir dir)
                 (invoke "tar" "-xzf" crate "-C" dir "--strip-components=1"
                         "--no-same-owner" "--mode=u+w")
                 (call-with-output-file (string-append dir "/.cargo-checksum.json")
                   (lambda (port)
                     (format port "{\"files\":{},\"package\":~s}" checksum))))))
            crates)
  (format #t "vendored ~a crates~%" (length crates)))

(define (cargo-home) (string-append (getenv "NIX_BUILD_TOP") "/cargo-home"))

(define* (configure #:key rust vendor #:allow-other-keys)
  (unless (and (string? rust) (file-exists? (string-append rust "/bin/cargo")))
    (error "cargo-build-system: #:rust must be a Rust toolchain (rust-toolchain VERSION HASH), not"
           rust))
  (unless (and (string? vendor) (directory-exists? vendor))
    (error "cargo-build-system: #:vendor must be the vendored crates (cargo-vendor ...), not"
           vendor))
  (setenv "PATH" (string-append rust "/bin:" (getenv "PATH")))
  (mkdir-p (cargo-home))
  (setenv "CARGO_HOME" (cargo-home))
  (call-with-output-file (string-append (cargo-home) "/config.toml")
    (lambda (port)
      (format port "[source.crates-io]~%replace-with = \"vendored\"~%~%")
      (format port "[source.vendored]~%directory = ~s~%~%" vendor)
      (format port "[net]~%offline = true~%~%[term]~%color = \"never\"~%")))
  ;; Nothing of the build's own paths, time or history reaches the output.
  (setenv "SOURCE_DATE_EPOCH" "1")
  (setenv "CARGO_INCREMENTAL" "0")
  (setenv "RUSTFLAGS"
          (string-join
           (map (match-lambda
                  ((from . to) (string-append "--remap-path-prefix=" from "=" to)))
                `((,(getcwd) . "/source")
                  (,(cargo-home) . "/cargo-home")
                  (,vendor . "/vendor")))
           " "))
  (format #t "cargo ~a, vendored crates ~a~%" rust vendor))

(define (cargo-jobs)
  (list "-j" (or (getenv "NIX_BUILD_CORES") "1")))

(define* (build #:key (cargo-build-flags '("--release")) #:allow-other-keys)
  (apply invoke "cargo" "build" "--offline" "--frozen" (append (cargo-jobs) cargo-build-flags)))

(define* (check #:key (tests? #f) (cargo-test-flags '("--release")) #:allow-other-keys)
  (if tests?
      (apply invoke "cargo" "test" "--offline" "--frozen" (append (cargo-jobs) cargo-test-flags))
      (format #t "tests disabled (#:tests? #f)~%")))

(define* (install #:key outputs (binaries '()) #:allow-other-keys)
  (let ((bin (string-append (assoc-ref outputs "out") "/bin")))
    (when (null? binaries)
      (error "cargo-build-system: #:binaries names no program to install"))
    (mkdir-p bin)
    (for-each (lambda (b)
                (let ((built (string-append "target/release/" b)))
                  (unless (file-exists? built)
                    (error "cargo-build-system: cargo built no binary" built))
                  (copy-file built (string-append bin "/" b))
                  (chmod (string-append bin "/" b) #o555)))
              binaries)))

(define %standard-phases
  `((set-paths . ,(assq-ref gnu:%standard-phases 'set-paths))
    (unpack . ,(assq-ref gnu:%standard-phases 'unpack))
    (configure . ,configure)
    (build . ,build)
    (check . ,check)
    (install . ,install)))

(define* (cargo-build #:key (phases %standard-phases) #:allow-other-keys #:rest args)
  (apply gnu:gnu-build #:phases phases args))
