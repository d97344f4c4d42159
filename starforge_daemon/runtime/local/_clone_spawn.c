/* os.posix_spawn with one more argument: the cgroup the child starts in.
 *
 * clone3(CLONE_INTO_CGROUP) places the child in its cgroup as it is created. The other way,
 * moving the spawner in and out around posix_spawn, writes cgroup.procs: on a kernel whose
 * cgroup2 mount lacks favordynmods that write waits for an RCU grace period (about 6 ms here)
 * whenever no migration happened in the last few milliseconds, which is every live trigger.
 * glibc offers the same from 2.39 (posix_spawnattr_setcgroup_np); Python offers it not at all.
 *
 * The child is made as posix_spawn makes it (CLONE_VM | CLONE_VFORK, on a stack of its own):
 * it shares the caller's memory until its exec, so it makes system calls only, and the caller
 * waits for that exec. Built where a compiler is found; the keeper migrates without it.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_STACK (64 * 1024)

/* Linux 6.18 (at least) kills a child cloned into a cgroup whose cgroup.kill was ever written,
 * unless the caller's cgroup was killed as many times: cgroup_css_set_fork() reads the kill
 * count of the caller's cgroup, cgroup_post_fork() compares it with the target's. */
#define KILLED_AT_BIRTH "the child was killed as it was made: the kernel refuses clone3 into " \
    "a cgroup killed before"

enum { FILE_OPEN, FILE_CLOSE, FILE_DUP2 };  /* os.POSIX_SPAWN_OPEN, _CLOSE and _DUP2 */

struct file_action {
    long kind;  /* FILE_OPEN, FILE_CLOSE or FILE_DUP2 */
    int fd;
    int other_fd;  /* dup2's source */
    const char *path;  /* open's */
    int flags;
    int mode;
};

struct plan {
    const char *path;
    char **argv;
    char **envp;
    struct file_action *actions;
    Py_ssize_t action_count;
    int setsid;
    sigset_t default_signals;
    int set_mask;
    sigset_t mask;
    sigset_t caller_mask;
    volatile int started;  /* the child ran: it was not killed on its way out of clone3 */
    volatile int error;  /* errno of the step that failed in the child; 0 when it execed */
};

static int open_onto(const struct file_action *action)
{
    int fd = open(action->path, action->flags, action->mode);
    if (fd < 0)
        return -1;
    if (fd != action->fd) {
        if (dup2(fd, action->fd) < 0)
            return -1;
        close(fd);
    }
    return 0;
}

/* The child, in the order posix_spawn keeps: signals, session, files, mask, exec. */
static int run_child(void *argument)
{
    struct plan *plan = argument;
    plan->started = 1;
    struct sigaction default_action;
    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    /* as glibc's child does: a handler of the caller's would run in the caller's memory */
    for (int signum = 1; signum < NSIG; signum++) {
        struct sigaction current;
        if (signum == SIGKILL || signum == SIGSTOP || sigaction(signum, NULL, &current) < 0)
            continue;  /* also the signals glibc keeps to itself */
        int plain = !(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL
                                                          || current.sa_handler == SIG_IGN);
        if ((!plain || sigismember(&plan->default_signals, signum) == 1)
                && sigaction(signum, &default_action, NULL) < 0)
            goto failed;
    }
    if (plan->setsid && setsid() < 0)
        goto failed;
    for (Py_ssize_t i = 0; i < plan->action_count; i++) {
        const struct file_action *action = &plan->actions[i];
        int done = action->kind == FILE_OPEN ? open_onto(action)
                   : action->kind == FILE_CLOSE ? close(action->fd)
                   : action->other_fd == action->fd ? fcntl(action->fd, F_SETFD, 0)
                   : dup2(action->other_fd, action->fd);
        if (done < 0)
            goto failed;
    }
    sigprocmask(SIG_SETMASK, plan->set_mask ? &plan->mask : &plan->caller_mask, NULL);
    execve(plan->path, plan->argv, plan->envp);
failed:
    plan->error = errno;
    _exit(127);
}

/* clone3 running child(argument) on the stack named in args; the child never returns. */
static long clone3_running(struct clone_args *args, int (*child)(void *), void *argument)
{
#if defined(__x86_64__)
    long result;
    register void *child_r8 __asm__("r8") = (void *)child;
    register void *argument_r9 __asm__("r9") = argument;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"  /* the child: its stack starts empty and 16-byte aligned */
        "mov %%r9, %%rdi\n\t"
        "call *%%r8\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $231, %%eax\n\t"  /* exit_group, should child return */
        "syscall\n\t"
        "hlt\n"
        "1:"
        : "=a"(result)
        : "0"((long)SYS_clone3), "D"(args), "S"(sizeof *args), "r"(child_r8), "r"(argument_r9)
        : "rcx", "r11", "memory", "cc");
    if (result < 0) {
        errno = (int)-result;
        return -1;
    }
    return result;
#else
    (void)args;
    (void)child;
    (void)argument;
    errno = ENOSYS;
    return -1;
#endif
}

static void free_strings(char **strings)
{
    if (strings == NULL)
        return;
    for (char **string = strings; *string != NULL; string++)
        PyMem_Free(*string);
    PyMem_Free(strings);
}

/* A NULL-ended array of copies of the str or bytes items of a sequence. */
static char **strings_of(PyObject *sequence)
{
    PyObject *fast = PySequence_Fast(sequence, "expected a sequence of str or bytes");
    if (fast == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    char **strings = PyMem_Calloc(count + 1, sizeof *strings);
    for (Py_ssize_t i = 0; strings != NULL && i < count; i++) {
        PyObject *bytes = NULL;
        if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(fast, i), &bytes)) {
            free_strings(strings);
            Py_DECREF(fast);
            return NULL;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(bytes) + 1;
        if ((strings[i] = PyMem_Malloc(size)) != NULL)
            memcpy(strings[i], PyBytes_AS_STRING(bytes), size);
        Py_DECREF(bytes);
        if (strings[i] == NULL) {
            free_strings(strings);
            strings = NULL;
        }
    }
    Py_DECREF(fast);
    if (strings == NULL)
        PyErr_NoMemory();
    return strings;
}

/* "KEY=VALUE" strings of a mapping. */
static char **environment_of(PyObject *env)
{
    PyObject *items = PyMapping_Items(env);
    if (items == NULL)
        return NULL;
    PyObject *lines = PyList_New(0);
    for (Py_ssize_t i = 0; lines != NULL && i < PyList_GET_SIZE(items); i++) {
        PyObject *key, *value;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(items, i), "UU", &key, &value)
                || PyUnicode_FindChar(key, '=', 0, PyUnicode_GET_LENGTH(key), 1) != -1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "illegal environment variable name");
            Py_CLEAR(lines);
            break;
        }
        PyObject *line = PyUnicode_FromFormat("%U=%U", key, value);
        if (line == NULL || PyList_Append(lines, line) < 0)
            Py_CLEAR(lines);
        Py_XDECREF(line);
    }
    Py_DECREF(items);
    if (lines == NULL)
        return NULL;
    char **strings = strings_of(lines);
    Py_DECREF(lines);
    return strings;
}

/* The file actions, as os.posix_spawn takes them; the open paths are kept in *paths. */
static struct file_action *actions_of(PyObject *sequence, Py_ssize_t *count, PyObject *paths)
{
    PyObject *fast = PySequence_Fast(sequence, "file_actions must be a sequence");
    if (fast == NULL)
        return NULL;
    *count = PySequence_Fast_GET_SIZE(fast);
    struct file_action *actions = PyMem_Calloc(*count + 1, sizeof *actions);
    if (actions == NULL)
        PyErr_NoMemory();
    for (Py_ssize_t i = 0; actions != NULL && i < *count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i), *path = NULL;
        struct file_action *action = &actions[i];
        int parsed;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) == 0)
            parsed = 0;
        else if ((action->kind = PyLong_AsLong(PyTuple_GET_ITEM(item, 0))) == FILE_OPEN)
            parsed = PyArg_ParseTuple(item, "liO&ii", &action->kind, &action->fd,
                                      PyUnicode_FSConverter, &path, &action->flags, &action->mode)
                     && PyList_Append(paths, path) == 0;
        else if (action->kind == FILE_CLOSE)
            parsed = PyArg_ParseTuple(item, "li", &action->kind, &action->fd);
        else if (action->kind == FILE_DUP2)
            parsed = PyArg_ParseTuple(item, "lii", &action->kind, &action->other_fd, &action->fd);
        else
            parsed = 0;
        if (path != NULL) {
            action->path = PyBytes_AS_STRING(path);  /* kept alive by paths */
            Py_DECREF(path);
        }
        if (!parsed) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "each file action must be a tuple as "
                                "os.posix_spawn takes it");
            PyMem_Free(actions);
            actions = NULL;
        }
    }
    Py_DECREF(fast);
    return actions;
}

static int signals_of(PyObject *sequence, sigset_t *set)
{
    sigemptyset(set);
    PyObject *iterator = PyObject_GetIter(sequence), *item;
    if (iterator == NULL)
        return 0;
    while ((item = PyIter_Next(iterator)) != NULL) {
        long signum = PyLong_AsLong(item);
        Py_DECREF(item);
        if ((signum == -1 && PyErr_Occurred()) || sigaddset(set, (int)signum) < 0) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "signal number %ld out of range", signum);
            break;
        }
    }
    Py_DECREF(iterator);
    return !PyErr_Occurred();
}

static PyObject *spawn(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"path", "argv", "env", "cgroup", "file_actions", "setsid",
                               "setsigdef", "setsigmask", NULL};
    PyObject *path_object, *path = NULL, *argv_object, *env_object, *actions_object = Py_None,
             *default_object = NULL, *mask_object = NULL, *paths = NULL, *result = NULL;
    int cgroup_fd, new_session = 0;
    struct plan plan;
    memset(&plan, 0, sizeof plan);
    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOi|$OpOO", keywords,
                                     &path_object, &argv_object, &env_object,
                                     &cgroup_fd, &actions_object, &new_session, &default_object,
                                     &mask_object))
        return NULL;
    if (!PyUnicode_FSConverter(path_object, &path))
        return NULL;
    plan.path = PyBytes_AS_STRING(path);
    plan.setsid = new_session;
    if ((paths = PyList_New(0)) == NULL || (plan.argv = strings_of(argv_object)) == NULL
            || (plan.envp = environment_of(env_object)) == NULL)
        goto done;
    if (actions_object != Py_None
            && (plan.actions = actions_of(actions_object, &plan.action_count, paths)) == NULL)
        goto done;
    if (default_object != NULL && !signals_of(default_object, &plan.default_signals))
        goto done;
    if (mask_object != NULL && !(plan.set_mask = signals_of(mask_object, &plan.mask)))
        goto done;

    _Alignas(16) char stack[CHILD_STACK];
    struct clone_args clone = {
        .flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP,
        .exit_signal = SIGCHLD,
        .stack = (uint64_t)(uintptr_t)stack,
        .stack_size = sizeof stack,
        .cgroup = (uint64_t)cgroup_fd,
    };
    /* no signal handler may run in the child while it shares this process's memory */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &plan.caller_mask);
    long pid = clone3_running(&clone, run_child, &plan);
    int clone_error = errno;
    pthread_sigmask(SIG_SETMASK, &plan.caller_mask, NULL);
    if (pid < 0) {
        errno = clone_error;
        PyErr_SetFromErrno(PyExc_OSError);
    } else if (!plan.started || plan.error != 0) {  /* it exited before its exec: reap it */
        int status;
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (plan.started) {
            errno = plan.error;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_object);
        } else {
            PyErr_SetObject(PyExc_OSError, Py_BuildValue("(is)", ECANCELED, KILLED_AT_BIRTH));
        }
    } else {
        result = PyLong_FromLong(pid);
    }
done:
    Py_XDECREF(path);
    Py_XDECREF(paths);
    free_strings(plan.argv);
    free_strings(plan.envp);
    PyMem_Free(plan.actions);
    return result;
}

static PyMethodDef methods[] = {
    {"spawn", (PyCFunction)(void (*)(void))spawn, METH_VARARGS | METH_KEYWORDS,
     "spawn(path, argv, env, cgroup, *, file_actions=None, setsid=False, setsigdef=(),"
     " setsigmask=None) -> pid\n\n"
     "os.posix_spawn, the child started inside the cgroup whose folder is open as cgroup."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_clone_spawn",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__clone_spawn(void)
{
    return PyModule_Create(&module_definition);
}
