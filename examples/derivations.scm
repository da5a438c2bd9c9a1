;; Raw derivations: what packages lower to, written by hand.
;; `guixie eval examples/derivations.scm` prints the .drv paths; `guixie drv show` shows one.

(define greeting
  (text-file "greeting.txt" "Hello from guixie!\n"))

(define hello
  (derivation "hello" "/bin/sh"
              (list "-c" (string-append "read line < " (store-item-path greeting)
                                        "; echo \"$line\" > $out"))
              #:inputs (list greeting)))

;; The same thing with Nix's semantics: every attribute becomes an environment variable,
;; and a derivation in an attribute becomes an input.
(define hello-twice
  (builtins-derivation
   `((name . "hello-twice")
     (system . "x86_64-linux")
     (builder . "/bin/sh")
     (args "-c" "cat $first $first > $out")
     (first . ,hello))))

(list hello hello-twice)
