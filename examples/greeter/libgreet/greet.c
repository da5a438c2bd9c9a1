#include <ctype.h>
#include <stdio.h>
#include "greet.h"

void greet(const char *name, int loud)
{
  char line[256];
  snprintf(line, sizeof line, "Hello, %s, from libgreet!", name);
  if (loud)
    for (char *c = line; *c; c++)
      *c = toupper((unsigned char) *c);
  puts(line);
}
