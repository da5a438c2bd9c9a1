/* Says what the sandbox lets it reach: the file named by argv[1], the network (a UDP
 * "connect" to 192.0.2.1 needs only a route), and which interfaces exist. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
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
  return 0;
}
