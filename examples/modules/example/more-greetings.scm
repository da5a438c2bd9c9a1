;; A module that uses another one from the load path, and inherits from its package.
(define-module (example more-greetings)
  #:use-module (example greetings))

(define-public greeting-twice
  (package
    (inherit greeting)
    (name "greeting-twice")
    (inputs (list greeting))
    (arguments
     (list #:builder
           #~(begin
               (use-modules (guixie build utils) (ice-9 textual-ports))
               (let ((text (string-append #$greeting "/share/greeting/text"))
                     (dir (string-append #$output "/share/greeting")))
                 (mkdir-p dir)
                 (call-with-output-file (string-append dir "/text")
                   (lambda (port)
                     (display (call-with-input-file text get-string-all) port)
                     (display (call-with-input-file text get-string-all) port)))))))))
