;;; Build side: helpers for builders, as Guix's (guix build utils). Runs inside the build,
;;; under the bootstrap toolchain's Guile.

(define-module (guixie build utils)
  #:use-module (ice-9 ftw)
  #:use-module (ice-9 match)
  #:use-module (ice-9 rdelim)
  #:use-module (ice-9 regex)
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
            substitute*))

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

(define (find-files dir pred)
  (let ((found '()))
    (ftw dir (lambda (file s flag)
               (when (and (eq? flag 'regular) (pred file s)) (set! found (cons file found)))
               #t))
    (sort found string<?)))

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
