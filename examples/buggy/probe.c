/* Says what the sandbox lets it reach: the file named by argv[1], the network (a UDP
 * "connect" to 192.0.2.1 needs only a route), which interfaces exist, and whether it may
 * ptrace. Each further argument names a file of the tool's shared directory to replace
 * with a link to argv[1], as a program that wants the host to read that file would. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1)
    printf("file: %s\n", open(argv[1], O_RDONLY) >= 0 ? "readable" : "unreachable");
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
  printf("network: %s\n",
         s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? "reachable" : "unreachable");
  struct if_nameindex *ifs = if_nameindex();
  for (struct if_nameindex *i = ifs; i && i->if_index; i++)
    printf("interface: %s\n", i->if_name);
  /* The seccomp filter's answer, not ptrace's: a traced process gets EPERM from it too. */
  printf("ptrace: %s\n", ptrace(PTRACE_TRACEME, 0, 0, 0) == 0 ? "allowed" : strerror(errno));
  for (int i = 2; i < argc; i++) {
    char path[256];
    snprintf(path, sizeof path, "/run/guixie-trace/%s", argv[i]);
    unlink(path);
    printf("planted %s: %s\n", argv[i], symlink(argv[1], path) == 0 ? "yes" : strerror(errno));
  }
  fflush(stdout);
  return 0;
}
