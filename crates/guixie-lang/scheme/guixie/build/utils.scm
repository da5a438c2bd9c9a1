;;; Build side: helpers for builders, as Guix's (guix build utils). Runs inside the build,
;;; under the bootstrap toolchain's Guile.

(define-module (guixie build utils)
  #:use-module (ice-9 ftw)
  #:use-module (ice-9 match)
  #:use-module (ice-9 rdelim)
  #:use-module (ice-9 regex)
  #:use-module (ice-9 binary-ports)
  #:use-module (ice-9 popen)
  #:use-module (rnrs bytevectors)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-11)
  #:export (invoke
            mkdir-p
            copy-recursively
            delete-file-recursively
            which
            with-directory-excursion
            directory-exists?
            executable-file?
            find-files
            modify-phases
            alist-replace
            search-path-as-list
            set-path-environment-variable
            install-file
            substitute
            substitute*
            tarball?
            symbolic-link?
            make-file-writable
            file-name-predicate
            search-input-file
            search-input-directory
            strip-store-file-name
            package-name->name+version
            patch-shebang
            patch-shebangs
            wrap-program
            invoke/quiet
            dump-port
            %store-directory))

(define (invoke program . args)
  (let ((status (apply system* program args)))
    (unless (zero? status)
      (error (format #f "command failed with status ~a: ~a" (status:exit-val status)
                     (string-join (cons program args) " "))))
    #t))

(define (mkdir-p dir)
  (let loop ((components (string-split dir #\/)) (path (if (string-prefix? "/" dir) "" ".")))
    (match components
      (() #t)
      (("" . rest) (loop rest path))
      ((c . rest)
       (let ((next (string-append path "/" c)))
         (unless (file-exists? next) (mkdir next))
         (loop rest next))))))

(define (directory-exists? dir)
  (let ((s (stat dir #f)))
    (and s (eq? 'directory (stat:type s)))))

(define (executable-file? file)
  (let ((s (stat file #f)))
    (and s (eq? 'regular (stat:type s)) (not (zero? (logand (stat:perms s) #o100))))))

(define (copy-recursively source destination)
  (let ((s (lstat source)))
    (case (stat:type s)
      ((directory)
       (mkdir-p destination)
       (for-each (lambda (name)
                   (unless (member name '("." ".."))
                     (copy-recursively (string-append source "/" name)
                                       (string-append destination "/" name))))
                 (scandir source)))
      ((symlink) (symlink (readlink source) destination))
      (else (copy-file source destination)
            (chmod destination (logior #o200 (stat:perms s)))))))

(define (delete-file-recursively dir)
  (let ((s (lstat dir)))
    (if (eq? 'directory (stat:type s))
        (begin
          (for-each (lambda (name)
                      (unless (member name '("." ".."))
                        (delete-file-recursively (string-append dir "/" name))))
                    (scandir dir))
          (rmdir dir))
        (delete-file dir))))

;; Guix's `file-name-predicate': a predicate matching the base names `regexp' matches.
(define (file-name-predicate regexp)
  (let ((rx (make-regexp regexp)))
    (lambda (file stat) (regexp-exec rx (basename file)))))

;; Files under `dir' that `pred' (a procedure of file and stat, or a regexp on base names)
;; accepts, sorted; with #:directories? #t directories too, as Guix's `find-files'. Symbolic
;; links are reported, never followed.
(define* (find-files dir #:optional (pred (const #t)) #:key directories?)
  (let ((pred (if (string? pred) (file-name-predicate pred) pred))
        (found '()))
    (when (false-if-exception (lstat dir))
      (nftw dir (lambda (file s flag base level)
                  (when (and (if (eq? flag 'directory) directories? #t)
                             (pred file s))
                    (set! found (cons file found)))
                  #t)
            'physical))
    (sort found string<?)))

(define (tarball? file)
  (any (lambda (ext) (string-suffix? ext file))
       '(".tar" ".tar.gz" ".tgz" ".tar.xz" ".txz")))

(define (symbolic-link? file)
  (let ((s (false-if-exception (lstat file))))
    (and s (eq? 'symlink (stat:type s)))))

(define (make-file-writable file)
  (chmod file (logior #o200 (stat:perms (stat file)))))

(define %store-directory
  (or (getenv "NIX_STORE") "/gnu/store"))

;; "/gnu/store/<hash>-foo-1.0" -> "foo-1.0".
(define (strip-store-file-name file)
  (let ((base (basename file)))
    (if (and (string-prefix? %store-directory file) (> (string-length base) 33))
        (substring base 33)
        base)))

;; "foo-bar-1.0" -> (values "foo-bar" "1.0"): split at the first hyphen before a digit, as
;; Guix does ("notes-0.1-1.abc" is "notes" "0.1-1.abc").
(define (package-name->name+version spec)
  (let loop ((start 0))
    (let ((i (string-index spec #\- start)))
      (cond ((not i) (values spec #f))
            ((and (< (+ i 1) (string-length spec))
                  (char-numeric? (string-ref spec (+ i 1))))
             (values (substring spec 0 i) (substring spec (+ i 1))))
            (else (loop (+ i 1)))))))

;; The first `file' (a relative name such as "bin/ls") under the directories of `inputs'
;; (an alist of labels and directories), as Guix's `search-input-file'.
(define (search-input-file inputs file)
  (or (any (lambda (dir)
             (let ((f (string-append dir "/" (string-trim file #\/))))
               (and (file-exists? f) (not (directory-exists? f)) f)))
           (delete-duplicates (map cdr inputs)))
      (error (format #f "search-input-file: no input has ~a" file))))

(define (search-input-directory inputs directory)
  (or (any (lambda (dir)
             (let ((d (string-append dir "/" (string-trim directory #\/))))
               (and (directory-exists? d) d)))
           (delete-duplicates (map cdr inputs)))
      (error (format #f "search-input-directory: no input has ~a" directory))))

;; Runs the program with its output kept back, shown only if it fails.
(define (invoke/quiet program . args)
  (let* ((port (apply open-pipe* OPEN_READ "/bin/sh" "-c" "exec \"$0\" \"$@\" 2>&1"
                      program args))
         (output (read-string port))
         (status (close-pipe port)))
    (unless (zero? status)
      (display output)
      (error (format #f "command failed with status ~a: ~a" (status:exit-val status)
                     (string-join (cons program args) " "))))
    #t))

;; Copies `in' to `out', all of it or `len' bytes, as Guix's `dump-port'.
(define* (dump-port in out #:optional len #:key (buffer-size 65536))
  (let ((buf (make-bytevector buffer-size)))
    (let loop ((left len))
      (unless (and left (<= left 0))
        (let ((n (get-bytevector-n! in buf 0 (if left (min left buffer-size) buffer-size))))
          (unless (eof-object? n)
            (put-bytevector out buf 0 n)
            (loop (and left (- left n)))))))))

;; Rewrites the `#!' line of `file' when it names a program by an absolute path outside the
;; store (or `/usr/bin/env PROGRAM'), to the program of that name on PATH, as Guix's
;; `patch-shebang'. Only the first line changes.
(define* (patch-shebang file #:optional (path (string-split (or (getenv "PATH") "") #\:)))
  (define (on-path name)
    (any (lambda (dir)
           (let ((f (string-append dir "/" name)))
             (and (executable-file? f) f)))
         path))
  (let* ((text (call-with-input-file file read-string))
         (end (or (string-index text #\newline) (string-length text)))
         (first (substring text 0 end)))
    (when (string-prefix? "#!" first)
      (match (string-tokenize (substring first 2))
        (((? (lambda (i) (and (string-prefix? "/" i)
                              (not (string-prefix? %store-directory i))))
             interpreter)
          . rest)
         (let* ((env? (and (string=? (basename interpreter) "env") (pair? rest)))
                (name (if env? (car rest) (basename interpreter)))
                (args (if env? (cdr rest) rest))
                (found (on-path name)))
           (when (and found (not (string=? found interpreter)))
             (let ((mode (stat:perms (stat file))))
               (call-with-output-file file
                 (lambda (port)
                   (display (string-append "#!" (string-join (cons found args) " ")) port)
                   (display (substring text end) port)))
               (chmod file mode)))))
        (_ #t)))))

(define (patch-shebangs dir)
  (for-each (lambda (f) (when (executable-file? f) (patch-shebang f)))
            (find-files dir)))

;; Guix's `wrap-program': `prog' becomes a shell script setting the variables, then running
;; the original, kept as `.prog-real'. Each variable is (NAME SEPARATOR prefix|suffix|= VALUES),
;; (NAME prefix|suffix|= VALUES) with ":" as separator, or (NAME = VALUES). Wrapping again adds
;; to the wrapper, as in Guix.
(define* (wrap-program prog #:key (sh "/bin/sh") #:rest variables)
  (define (plain-variables args)
    (let loop ((args args) (acc '()))
      (match args
        (() (reverse acc))
        (((? keyword?) _ . rest) (loop rest acc))
        ((v . rest) (loop rest (cons v acc))))))
  (define (quote-sh s)
    (string-append "'" (regexp-substitute/global #f "'" s 'pre "'\\''" 'post) "'"))
  (define (export-line spec)
    (match spec
      ((var (and how (or '= 'prefix 'suffix)) (values ...))
       (export-line (list var ":" how values)))
      ((var sep '= (values ...))
       (format #f "export ~a=~a" var (quote-sh (string-join values sep))))
      ((var sep 'prefix (values ...))
       (format #f "export ~a=~a${~a:+~a}${~a}" var (quote-sh (string-join values sep)) var
               (quote-sh sep) var))
      ((var sep 'suffix (values ...))
       (format #f "export ~a=${~a}${~a:+~a}~a" var var var (quote-sh sep)
               (quote-sh (string-join values sep))))
      (_ (error "wrap-program: expected (VARIABLE [SEPARATOR] prefix|suffix|= (VALUE ...)), got"
                spec))))
  (let* ((real (string-append (dirname prog) "/." (basename prog) "-real"))
         (exec-line (string-append "exec " (quote-sh real) " \"$@\""))
         (lines (map export-line (plain-variables variables)))
         ;; The exports of an earlier wrapping, when `prog' is already a wrapper.
         (earlier (if (file-exists? real)
                      (filter (lambda (l) (string-prefix? "export " l))
                              (string-split (call-with-input-file prog read-string) #\newline))
                      '())))
    (unless (file-exists? real)
      (rename-file prog real))
    (call-with-output-file prog
      (lambda (port)
        (format port "#!~a~%~a~%~a~%" sh (string-join (append earlier lines) "\n") exec-line)))
    (chmod prog #o755)))

(define (which program)
  (find (lambda (dir) (executable-file? (string-append dir "/" program)))
        (string-split (or (getenv "PATH") "") #\:)))

(define-syntax-rule (with-directory-excursion dir body ...)
  (let ((previous (getcwd)))
    (dynamic-wind (lambda () (chdir dir))
                  (lambda () body ...)
                  (lambda () (chdir previous)))))

(define (search-path-as-list subdirs directories)
  (append-map (lambda (dir)
                (filter-map (lambda (sub)
                              (let ((p (string-append dir "/" sub)))
                                (and (directory-exists? p) p)))
                            subdirs))
              directories))

(define (set-path-environment-variable variable subdirs directories)
  (let ((paths (search-path-as-list subdirs directories)))
    (unless (null? paths)
      (setenv variable (string-join paths ":"))
      (format #t "environment variable `~a' set to `~a'~%" variable (string-join paths ":")))))

(define (alist-replace key value alist)
  (map (lambda (entry) (if (equal? (car entry) key) (cons key value) entry)) alist))

;; Guix's phase editing: (modify-phases phases (delete 'x) (replace 'x proc)
;; (add-before 'x 'new proc) (add-after 'x 'new proc)).
(define (phase-index phases name)
  (or (list-index (lambda (p) (eq? (car p) name)) phases)
      (error (format #f "modify-phases: no phase named `~a' (phases: ~a)" name
                     (string-join (map (lambda (p) (symbol->string (car p))) phases) ", ")))))

(define (phases-delete phases name)
  (phase-index phases name)
  (remove (lambda (p) (eq? (car p) name)) phases))

(define (phases-replace phases name proc)
  (phase-index phases name)
  (alist-replace name proc phases))

(define (phases-insert phases at new proc after?)
  (let-values (((before rest) (split-at phases (+ (phase-index phases at) (if after? 1 0)))))
    (append before (list (cons new proc)) rest)))

(define-syntax modify-phases
  (syntax-rules ()
    ((_ phases) phases)
    ((_ phases clause rest ...)
     (modify-phases (modify-phase phases clause) rest ...))))

(define-syntax modify-phase
  (syntax-rules (delete replace add-before add-after)
    ((_ phases (delete name)) (phases-delete phases name))
    ((_ phases (replace name proc)) (phases-replace phases name proc))
    ((_ phases (add-before at new proc)) (phases-insert phases at new proc #f))
    ((_ phases (add-after at new proc)) (phases-insert phases at new proc #t))))
;; Copies `file' into `directory' (made if needed), as Guix's `install-file'.
(define (install-file file directory)
  (mkdir-p directory)
  (copy-file file (string-append directory "/" (basename file))))

;; Rewrites `file' line by line: for each (regexp . procedure), a line with matches becomes
;; (procedure line matches). The file keeps its permissions.
(define (substitute file pattern+procs)
  (let* ((rules (map (lambda (p) (cons (make-regexp (car p) regexp/extended) (cdr p)))
                     pattern+procs))
         (lines (call-with-input-file file
                  (lambda (port)
                    (let loop ((acc '()))
                      (let ((l (read-line port 'concat)))
                        (if (eof-object? l) (reverse acc) (loop (cons l acc))))))))
         (rewritten (map (lambda (line)
                           (fold (lambda (rule line)
                                   (let ((ms (list-matches (car rule) line)))
                                     (if (null? ms) line ((cdr rule) line ms))))
                                 line rules))
                         lines))
         (temp (string-append file ".substitute-tmp"))
         (mode (stat:perms (stat file))))
    (call-with-output-file temp
      (lambda (port) (for-each (lambda (l) (display l port)) rewritten)))
    (rename-file temp file)
    (chmod file mode)))

;; (let-matches index match (var ...) body ...): var ... bound to the whole match and its
;; groups, `_' skipping one.
(define-syntax let-matches
  (syntax-rules (_)
    ((let-matches index match (_ vars ...) body ...)
     (let-matches (+ 1 index) match (vars ...) body ...))
    ((let-matches index match (var vars ...) body ...)
     (let ((var (match:substring match index)))
       (let-matches (+ 1 index) match (vars ...) body ...)))
    ((let-matches index match () body ...)
     (let () body ...))))

;; Guix's `substitute*': (substitute* file-or-files ((regexp match-var ...) body ...) ...),
;; every match of each regexp in each line replaced by the value of its body.
(define-syntax substitute*
  (syntax-rules ()
    ((substitute* file ((regexp match-var ...) body ...) ...)
     (let ()
       (define (substitute-one-file file-name)
         (substitute
          file-name
          (list (cons regexp
                      (lambda (l m+)
                        (string-concatenate
                         (let loop ((m* m+) (prev 0))
                           (if (null? m*)
                               (list (substring l prev))
                               (let ((m (car m*)))
                                 (cons* (substring l prev (match:start m))
                                        (let-matches 0 m (match-var ...) body ...)
                                        (loop (cdr m*) (match:end m)))))))))
                ...)))
       (let ((f file))
         (if (list? f) (for-each substitute-one-file f) (substitute-one-file f)))))))
