#include <stdio.h>

#ifndef GREETING
#define GREETING "Hello, world!"
#endif

int main(void)
{
  puts(GREETING);
  return 0;
}
