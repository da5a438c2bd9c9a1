/* Spends its time in one recursive function: perf's flame graph is a tower of fib. */
#include <stdio.h>

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(void) {
  printf("%ld\n", fib(34));
  return 0;
}
