;; A Python agent that calls an HTTP service, for `guixie run --trace=python`
;; (docs/introspection.md): its calls traced, its HTTP recorded once and replayed with no
;; network.
;;
;;   guixie build examples/agent.scm
;;   guixie run --trace=python --record /gnu/store/…-agent-1.0/bin/agent http://127.0.0.1:8000 find a book
;;   guixie run --trace=python --replay /gnu/store/…-agent-http-recording.json \
;;     /gnu/store/…-agent-1.0/bin/agent http://127.0.0.1:8000 find a book

(define agent
  (package
    (name "agent")
    (version "1.0")
    (source (local-file "agent" #:recursive? #t))
    (build-system python-build-system)
    (arguments '(#:tests? #f))
    (synopsis "An agent whose HTTP can be recorded and replayed")
    (description "Asks a service about each word of a task, then reports back.")
    (home-page "https://example.org/agent")
    (license 'expat)))

agent
