;;; Evaluates user files: no files, sockets or processes (local data may be mutated),
;;; time-limited, one top-level
;;; form at a time without compiling them, errors tagged with file:line:column.

(define-module (guixie loader)
  #:use-module (ice-9 sandbox)
  #:use-module (guixie derivations)
  #:use-module (guixie gexp)
  #:use-module (guixie packages)
  #:use-module (guixie build-systems)
  #:use-module (srfi srfi-1)
  #:export (load-user-file load-user-string collect-derivations))

(define guixie-bindings
  '(((guixie derivations)
     derivation derivation? derivation-name derivation-file-name derivation-outputs
     derivation-output-path derivation-output derivation-output? builtins-derivation
     text-file store-item? store-item-path
     %current-system store-directory)
    ((guixie gexp)
     gexp ungexp ungexp-splicing ungexp-native ungexp-native-splicing gexp? gexp-input
     local-file local-file? plain-file gexp->derivation)
    ((guixie packages)
     package package? package-name package-version package-full-name package-source
     package-build-system package-arguments package-inputs package-native-inputs
     package-propagated-inputs package-outputs package-synopsis package-description
     package-license package-home-page package-location
     origin origin? origin-uri origin-sha256 origin-file-name url-fetch base32
     build-system build-system? build-system-name)
    ((guixie build-systems) trivial-build-system gnu-build-system)
    ((ice-9 match) match match-lambda match-lambda* match-let match-let*)
    ((srfi srfi-1)
     fold fold-right filter-map append-map delete-duplicates last first second third iota
     find any every count remove partition reduce)))

(define (user-module)
  (make-sandbox-module (append guixie-bindings all-pure-and-impure-bindings)))

(define (located? key args)
  (case key
    ((read-error) #t)
    ((syntax-error) (and (>= (length args) 3) (pair? (list-ref args 2))))
    ((guixie-error) (and (= (length args) 4) (pair? (list-ref args 3))))
    (else #f)))

(define (exception->string key args)
  (call-with-output-string
    (lambda (port)
      (if (and (eq? key 'limit-exceeded) (>= (length args) 2))
          (format port "evaluation stopped: ~a (raise --max-eval-seconds or simplify the code)"
                  (cadr args))
          (print-exception port #f key args)))))

(define (eval-forms port file module deadline)
  (let loop ((last *unspecified*))
    (let ((form (read port)))
      (if (eof-object? form)
          last
          (let* ((props (source-properties form))
                 (loc (and (assq-ref props 'line)
                           (list file (+ 1 (assq-ref props 'line)) (+ 1 (assq-ref props 'column)))))
                 (remaining (/ (- deadline (get-internal-real-time)) internal-time-units-per-second)))
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

(define (deadline-after seconds)
  (+ (get-internal-real-time) (inexact->exact (round (* seconds internal-time-units-per-second)))))

;; -> (last-value . module)
(define (load-user-file file max-seconds)
  (reset-lowering-caches!)
  (let* ((port (open-input-file file #:encoding "UTF-8"))
         (module (user-module))
         (value (parameterize ((%current-file-directory (dirname (canonicalize-path file))))
                  (eval-forms port file module (deadline-after max-seconds)))))
    (close-port port)
    (cons value module)))

(define (load-user-string text max-seconds)
  (reset-lowering-caches!)
  (let* ((port (open-input-string text))
         (module (user-module)))
    (set-port-filename! port "<expression>")
    (cons (eval-forms port "<expression>" module (deadline-after max-seconds)) module)))

;; Every derivation in a value (a derivation, or nested lists of them), as
;; (name drv-file ((output . path) ...)).
(define (collect-derivations value)
  (cond
   ((or (package? value) (origin? value) (local-file? value))
    (collect-derivations (lower-object value)))
   ((derivation? value)
    (list (list (derivation-name value) (derivation-file-name value) (derivation-outputs value))))
   ((pair? value) (append-map collect-derivations (if (list? value) value (list (car value) (cdr value)))))
   (else '())))
