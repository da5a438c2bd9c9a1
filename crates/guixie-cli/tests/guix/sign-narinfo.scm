;;; Signs a narinfo as `guix publish` does, with a key made as `guix archive
;;; --generate-key` makes one, through real libgcrypt (guile-gcrypt).
;;;
;;; Usage: guile sign-narinfo.scm SIGNED-PART-FILE DOWNLOADS-FILE OUT-FILE
;;; Writes SIGNED-PART, its Signature: line and DOWNLOADS to OUT-FILE; prints the public
;;; key's q in hex.

(use-modules (gcrypt pk-crypto) (gcrypt hash) (gcrypt base64) (gcrypt base16)
             (rnrs bytevectors) (ice-9 textual-ports) (ice-9 match))

(define (file->string file) (call-with-input-file file get-string-all))

(match (command-line)
  ((_ signed-part downloads out)
   (let* ((pair (generate-key
                 (string->canonical-sexp "(genkey (ecdsa (curve Ed25519) (flags rfc6979)))")))
          (public (find-sexp-token pair 'public-key))
          (secret (find-sexp-token pair 'private-key))
          (info (file->string signed-part))
          (data (bytevector->hash-data (sha256 (string->utf8 info)) #:key-type 'ecc))
          ;; (guix pki)'s signature-sexp
          (signature (string->canonical-sexp
                      (format #f "(signature ~a ~a ~a)"
                              (canonical-sexp->string data)
                              (canonical-sexp->string (sign data secret))
                              (canonical-sexp->string public)))))
     (call-with-output-file out
       (lambda (port)
         (format port "~aSignature: 1;guix-host;~a~%~a" info
                 (base64-encode (string->utf8 (canonical-sexp->string signature)))
                 (file->string downloads))))
     (display (bytevector->base16-string
               (canonical-sexp-nth-data (find-sexp-token public 'q) 1)))
     (newline))))
