;;; Build side of origins: checking out a Git commit (`git-fetch'), and applying an
;;; origin's patches and snippet to its source (Guix's `patch-and-repack').

(define-module (guixie build origin)
  #:use-module (guixie build utils)
  #:use-module (ice-9 match)
  #:use-module (ice-9 ftw)
  #:use-module (srfi srfi-1)
  #:export (git-fetch-checkout patch-and-repack))

;; The toolchain's programs (git, tar, xz, patch), as the sandbox shows them at /usr.
(define (use-toolchain-path!)
  (setenv "PATH" "/usr/bin:/bin"))

(define (git . args)
  (apply invoke "git" "-c" "advice.detachedHead=false" "-c" "init.defaultBranch=main" args))

;; Checks out `commit' of the repository at `url' into `directory', without `.git', as
;; Guix's `git-fetch' does: its NAR hash is the origin's. A shallow fetch of the commit is
;; tried first; servers that do not allow it get a full fetch.
(define* (git-fetch-checkout url commit directory #:key recursive?)
  (use-toolchain-path!)
  (setenv "HOME" "/tmp")
  (setenv "GIT_CONFIG_NOSYSTEM" "1")
  (setenv "GIT_TERMINAL_PROMPT" "0")
  (mkdir-p directory)
  (with-directory-excursion directory
    (git "init" "--quiet")
    (git "remote" "add" "origin" url)
    ;; A shallow fetch of a commit id or a tag leaves it as FETCH_HEAD (a tag fetched so
    ;; makes no refs/tags/); a server that refuses it gets a full fetch, tags included.
    (if (false-if-exception (git "fetch" "--depth" "1" "origin" commit))
        (git "checkout" "--quiet" "FETCH_HEAD")
        (begin
          (format #t "shallow fetch of ~a refused; fetching everything~%" commit)
          (git "fetch" "--tags" "origin")
          (git "checkout" "--quiet" commit)))
    (when recursive?
      (git "submodule" "update" "--init" "--recursive")))
  (for-each delete-file-recursively
            (find-files directory (lambda (file stat) (string=? (basename file) ".git"))
                        #:directories? #t))
  #t)

(define (entries dir)
  (filter (lambda (n) (not (member n '("." "..")))) (or (scandir dir) '())))

;; Unpacks `source' (a tarball or a directory) under `work', applies `patches' (files, with
;; `flags' for patch) and runs `snippet' (a thunk) in the source tree, then writes it to
;; `output': a tarball compressed with xz, made reproducible, when `tarball?' says so,
;; else a directory.
(define* (patch-and-repack source patches output
                           #:key (flags '("-p1")) snippet (tarball-output? #t))
  (define work (string-append (getcwd) "/guixie-origin"))
  (use-toolchain-path!)
  (mkdir-p work)
  (cond ((directory-exists? source)
         (copy-recursively source (string-append work "/source")))
        ((tarball? source)
         (mkdir (string-append work "/source"))
         (invoke "tar" "-xf" source "-C" (string-append work "/source")))
        (else (error (format #f "patching: ~a is neither a directory nor a tarball" source))))
  ;; A tarball with one top directory keeps it; a directory is the tree itself.
  (let* ((top (and (not (directory-exists? source))
                   (match (entries (string-append work "/source"))
                     (((? (lambda (n) (directory-exists? (string-append work "/source/" n))) n))
                      n)
                     (_ #f))))
         (tree (if top (string-append work "/source/" top) (string-append work "/source"))))
    (with-directory-excursion tree
      (for-each (lambda (patch)
                  (format #t "applying `~a'~%" (strip-store-file-name patch))
                  (apply invoke "patch" "--force" "--no-backup-if-mismatch"
                         (append flags (list "--input" patch))))
                patches)
      (when snippet
        (format #t "running the origin's snippet~%")
        (snippet)))
    (if tarball-output?
        (begin
          (setenv "XZ_OPT" "-6 -T1")
          (invoke "tar" "--sort=name" "--mtime=@1" "--owner=root:0" "--group=root:0"
                  "--numeric-owner" "--mode=go=rX,u+rw,a-s" "--format=gnu" "-cJf" output
                  "-C" (dirname tree) (basename tree)))
        (copy-recursively tree output))))
