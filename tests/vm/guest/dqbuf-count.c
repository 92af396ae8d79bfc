/*
 * LD_PRELOAD shim for tests/vm/bench: counts the frames a V4L2 client dequeues, for peers that report no
 * frame count of their own (weston-simple-dmabuf-v4l runs until it is interrupted).
 *
 *   DQBUF_COUNT_FILE=FILE   the number of successful VIDIOC_DQBUF calls so far, rewritten after each one (so
 *                           the count survives a process that has to be killed; it only grows, so no truncate)
 *   DQBUF_COUNT_STOP=N      after the Nth successful VIDIOC_DQBUF the process gets SIGINT (a clean stop)
 *   DQBUF_COUNT_TIMES=FILE  one line per successful VIDIOC_DQBUF: its CLOCK_MONOTONIC time in microseconds
 *                           (the client's steady frame rate, even from a run that has to be killed)
 *
 * It only forwards ioctl(2) to the C library and counts; it never touches the buffers. Built on the host by
 * tests/vm/bench (cc -shared -fPIC) and copied into the VM next to dmacam.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static unsigned long dequeued;
static unsigned long stop_after;
static int count_fd = -1;
static int times_fd = -1;
static int (*real_ioctl)(int, unsigned long, void *);

__attribute__((constructor)) static void dqbuf_count_init(void)
{
	const char *stop = getenv("DQBUF_COUNT_STOP");
	const char *path = getenv("DQBUF_COUNT_FILE");
	const char *times = getenv("DQBUF_COUNT_TIMES");

	real_ioctl = (int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl");
	if (stop)
		stop_after = strtoul(stop, NULL, 10);
	if (path)
		count_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (times)
		times_fd = open(times, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

static void write_time(void)
{
	struct timespec now;
	char line[32];
	int n;

	if (times_fd < 0 || clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return;
	n = snprintf(line, sizeof line, "%lld\n", (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
	if (n > 0 && write(times_fd, line, (size_t)n) < 0)
		times_fd = -1;
}

static void write_count(void)
{
	char line[32];
	int n;

	if (count_fd < 0)
		return;
	n = snprintf(line, sizeof line, "%lu\n", dequeued);
	if (n > 0 && pwrite(count_fd, line, (size_t)n, 0) < 0)
		count_fd = -1;
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	int ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	ret = real_ioctl(fd, request, arg);
	/*
	 * Compare the low 32 bits only, as the kernel does: a caller that keeps the request in an int (as
	 * weston-simple-dmabuf-v4l's xioctl() does) passes VIDIOC_DQBUF (0xc0585611) sign-extended to
	 * 0xffffffffc0585611, which the kernel takes as the same command.
	 */
	if (ret == 0 && (unsigned int)request == (unsigned int)VIDIOC_DQBUF) {
		dequeued++;
		write_count();
		write_time();
		if (stop_after && dequeued == stop_after)
			kill(getpid(), SIGINT);
	}
	return ret;
}
