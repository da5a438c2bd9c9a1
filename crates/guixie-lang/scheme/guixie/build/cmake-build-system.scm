;;; Build side of cmake-build-system: gnu-build-system's phases with CMake's configure
;;; (out of the source tree, in ../build) and CTest's check, as in Guix.

(define-module (guixie build cmake-build-system)
  #:use-module (guixie build utils)
  #:use-module ((guixie build gnu-build-system) #:prefix gnu:)
  #:use-module (srfi srfi-1)
  #:export (%standard-phases cmake-build))

(define* (configure #:key outputs (configure-flags '()) (build-type "RelWithDebInfo")
                    (out-of-source? #t) #:allow-other-keys)
  (let ((out (assoc-ref outputs "out"))
        (source (getcwd)))
    (when out-of-source?
      (mkdir-p "../build")
      (chdir "../build"))
    (format #t "configuring in ~a~%" (getcwd))
    (apply invoke "cmake" (if out-of-source? source ".")
           (string-append "-DCMAKE_BUILD_TYPE=" build-type)
           (string-append "-DCMAKE_INSTALL_PREFIX=" out)
           "-DCMAKE_INSTALL_LIBDIR=lib"
           "-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=TRUE"
           (string-append "-DCMAKE_INSTALL_RPATH=" out "/lib")
           "-DCMAKE_VERBOSE_MAKEFILE=ON"
           "-DCMAKE_COLOR_MAKEFILE=OFF"
           configure-flags)))

(define* (check #:key (tests? #t) (test-target "test") (parallel-tests? #t)
                #:allow-other-keys)
  (if tests?
      (begin
        (setenv "CTEST_OUTPUT_ON_FAILURE" "1")
        (invoke "make" test-target))
      (format #t "tests disabled (#:tests? #f)~%")))

(define %standard-phases
  (alist-replace 'configure configure
                 (alist-replace 'check check gnu:%standard-phases)))

(define* (cmake-build #:key (phases %standard-phases) #:allow-other-keys #:rest args)
  (apply gnu:gnu-build #:phases phases args))
