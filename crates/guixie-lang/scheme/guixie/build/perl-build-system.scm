;;; Build side of perl-build-system: `perl Makefile.PL' (or `perl Build.PL') with the
;;; output as its prefix, then make, make test and make install, as in Guix.

(define-module (guixie build perl-build-system)
  #:use-module (guixie build utils)
  #:use-module ((guixie build gnu-build-system) #:prefix gnu:)
  #:use-module (ice-9 match)
  #:use-module (ice-9 popen)
  #:use-module (ice-9 rdelim)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases perl-build))

(define* (configure #:key outputs (make-maker-flags '()) (module-build-flags '())
                    #:allow-other-keys)
  (let ((out (assoc-ref outputs "out")))
    (setenv "PERL_MM_USE_DEFAULT" "1")
    (cond ((file-exists? "Build.PL")
           (apply invoke "perl" "Build.PL" (string-append "--prefix=" out)
                  "--installdirs=site" module-build-flags))
          ((file-exists? "Makefile.PL")
           (apply invoke "perl" "Makefile.PL" (string-append "PREFIX=" out)
                  "INSTALLDIRS=site" "NO_PERLLOCAL=1" "NO_PACKLIST=1" make-maker-flags))
          (else (error "perl-build-system: neither Build.PL nor Makefile.PL")))))

(define (module-build?) (file-exists? "Build"))

(define* (build #:key (make-flags '()) #:allow-other-keys)
  (if (module-build?)
      (invoke "./Build")
      (apply invoke "make" make-flags)))

(define* (check #:key (tests? #t) (make-flags '()) #:allow-other-keys)
  (cond ((not tests?) (format #t "tests disabled (#:tests? #f)~%"))
        ((module-build?) (invoke "./Build" "test"))
        (else (apply invoke "make" "test" make-flags))))

(define* (install #:key (make-flags '()) #:allow-other-keys)
  (if (module-build?)
      (invoke "./Build" "install")
      (apply invoke "make" "install" make-flags)))

;; Where the toolchain's Perl installs modules under a prefix: its site directories, with
;; the site prefix taken off (Debian's: share/perl/5.36.0, lib/x86_64-linux-gnu/perl/5.36.0).
(define (perl-library-directories)
  (let* ((port (open-pipe* OPEN_READ "perl" "-MConfig" "-e"
                           "print join ' ', map { substr($Config{$_}, 1 + length $Config{siteprefixexp}) } qw(installsitelib installsitearch)"))
         (words (string-tokenize (read-line port))))
    (close-pipe port)
    (append words '("share/perl5" "lib/perl5/site_perl"))))

(define* (set-perl-paths #:key inputs outputs #:allow-other-keys)
  (set-path-environment-variable "PERL5LIB" (perl-library-directories)
                                 (delete-duplicates (append (map cdr outputs) (map cdr inputs)))))

(define %standard-phases
  (append-map (lambda (phase)
                (case (car phase)
                  ((set-paths) (list phase (cons 'set-perl-paths set-perl-paths)))
                  ((configure) (list (cons 'configure configure)))
                  ((build) (list (cons 'build build)))
                  ((check) (list (cons 'check check)))
                  ((install) (list (cons 'install install)))
                  (else (list phase))))
              gnu:%standard-phases))

(define* (perl-build #:key (phases %standard-phases) #:allow-other-keys #:rest args)
  (apply gnu:gnu-build #:phases phases args))
