#ifndef GREET_H
#define GREET_H
/* Writes a greeting for `name' to standard output; loud greetings shout. */
void greet(const char *name, int loud);
#endif
