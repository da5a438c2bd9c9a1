#include <stdio.h>
int main(void) {
  puts("hello from greet-c");
  return 0;
}
