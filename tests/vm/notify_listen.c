/* A stand-in for the service manager's notification socket in a test VM:
 * binds the datagram socket PATH and prints every message it gets, one a
 * line ("NOTIFY READY=1|STATUS=tracing", newlines as '|'), until killed.
 *     notify-listen PATH */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: notify-listen PATH\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof(addr.sun_path) - 1);
    unlink(argv[1]);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        perror("notify-listen");
        return 1;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0) {
            return 0;
        }
        buf[n] = 0;
        for (char *p = buf; *p; p++) {
            *p = *p == '\n' ? '|' : *p;
        }
        printf("NOTIFY %s\n", buf);
        fflush(stdout);
    }
}
