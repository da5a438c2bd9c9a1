/* Reads past the end of a block, then loses it: memcheck reports both. */
#include <stdio.h>
#include <stdlib.h>

static int *make(int n) { return malloc(n * sizeof(int)); }

int main(void) {
  int *a = make(4);
  for (int i = 0; i < 4; i++)
    a[i] = i;
  int past = a[4]; /* one past the end */
  printf("read %s\n", past == 12345 ? "a surprise" : "past the end");
  a = make(8); /* the first block is lost */
  free(a);
  return 0;
}
