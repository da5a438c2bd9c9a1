/* Dereferences a null pointer two calls deep: gdb names both functions. */
#include <stdio.h>

static int deref(const int *p) { return *p; }

static int follow(const int *p) { return deref(p) + 1; }

int main(int argc, char **argv) {
  (void)argv;
  printf("about to crash\n");
  fflush(stdout);
  return follow(argc > 5 ? &argc : 0);
}
