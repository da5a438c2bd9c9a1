/* Guile's header macros, re-expressed as functions so Rust can call them. Compiled against
   the installed headers, so the values always match the linked libguile. */
#include <libguile.h>

SCM guixie_scm_bool_f(void) { return SCM_BOOL_F; }
SCM guixie_scm_bool_t(void) { return SCM_BOOL_T; }
SCM guixie_scm_eol(void) { return SCM_EOL; }
SCM guixie_scm_unspecified(void) { return SCM_UNSPECIFIED; }
SCM guixie_scm_undefined(void) { return SCM_UNDEFINED; }
int guixie_scm_is_true(SCM x) { return scm_is_true(x); }
int guixie_scm_is_null(SCM x) { return scm_is_null(x); }
int guixie_scm_is_pair(SCM x) { return scm_is_pair(x); }
int guixie_scm_is_eq(SCM a, SCM b) { return scm_is_eq(a, b); }
int guixie_scm_is_unbound(SCM x) { return SCM_UNBNDP(x); }
SCM guixie_scm_car(SCM x) { return SCM_CAR(x); }
SCM guixie_scm_cdr(SCM x) { return SCM_CDR(x); }
const signed char *guixie_bytevector_contents(SCM bv) { return SCM_BYTEVECTOR_CONTENTS(bv); }
int guixie_scm_is_symbol(SCM x) { return scm_is_symbol(x); }
