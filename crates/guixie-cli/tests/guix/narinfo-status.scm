;;; The status Guix gives a narinfo's signature, computed as Guix computes it
;;; (`narinfo-sha256` in (guix narinfo), `%signature-status` in (guix pki)), with real
;;; libgcrypt through guile-gcrypt: Guix itself is not packaged in Debian.
;;;
;;; Usage: guile narinfo-status.scm NARINFO-FILE AUTHORIZED-KEY-FILE
;;; Prints valid-signature, invalid-signature, hash-mismatch, unauthorized-key,
;;; corrupt-signature or unsigned-mandatory-fields.

(use-modules (gcrypt pk-crypto) (gcrypt hash) (gcrypt base64)
             (rnrs bytevectors) (ice-9 textual-ports) (ice-9 match) (srfi srfi-1))

(define (file->string file) (call-with-input-file file get-string-all))

(define (status contents authorized)
  (let* ((index (string-contains contents "Signature:"))
         (above (string-take contents index))
         (line (let ((rest (substring contents index)))
                 (substring rest 0 (or (string-index rest #\newline) (string-length rest)))))
         (value (string-trim-both (substring line (string-length "Signature:")))))
    (match (string-split value #\;)
      (("1" host b64)
       (let* ((sig (string->canonical-sexp (utf8->string (base64-decode b64))))
              (data (find-sexp-token sig 'data))
              (subject (find-sexp-token sig 'public-key)))
         (cond ((not (every (lambda (f) (string-contains above (string-append f ":")))
                            '("StorePath" "NarHash" "References")))
                'unsigned-mandatory-fields)
               ((not (and data subject)) 'corrupt-signature)
               ((not (equal? (canonical-sexp->sexp subject) (canonical-sexp->sexp authorized)))
                'unauthorized-key)
               ((not (equal? (hash-data->bytevector data) (sha256 (string->utf8 above))))
                'hash-mismatch)
               ((verify (find-sexp-token sig 'sig-val) data subject) 'valid-signature)
               (else 'invalid-signature))))
      (_ 'corrupt-signature))))

(match (command-line)
  ((_ narinfo key)
   (display (status (file->string narinfo) (string->canonical-sexp (file->string key))))
   (newline)))
