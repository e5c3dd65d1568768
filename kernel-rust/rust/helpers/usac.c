// SPDX-License-Identifier: GPL-2.0

#include <linux/cred.h>
#include <linux/delayed_call.h>
#include <linux/fs.h>
#include <linux/fsnotify_backend.h>
#include <linux/memcontrol.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/posix_acl.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>

int rust_helper_path_permission(const struct path *path, int mask)
{
	return path_permission(path, mask);
}

void rust_helper_set_current_state_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void rust_helper_set_current_state_running(void)
{
	__set_current_state(TASK_RUNNING);
}

/*
 * True when nothing but job-control signals (stop, continue) or a
 * notification without a signal (TIF_NOTIFY_SIGNAL) interrupted current:
 * real_time_sync(2) then restarts instead of ending.
 */
bool rust_helper_usac_only_job_control_pending(void)
{
	const unsigned long job_control = sigmask(SIGSTOP) | sigmask(SIGTSTP) |
					  sigmask(SIGTTIN) | sigmask(SIGTTOU) |
					  sigmask(SIGCONT);
	sigset_t pending;

	spin_lock_irq(&current->sighand->siglock);
	sigorsets(&pending, &current->pending.signal,
		  &current->signal->shared_pending.signal);
	sigandnsets(&pending, &pending, &current->blocked);
	spin_unlock_irq(&current->sighand->siglock);
	sigdelsetmask(&pending, job_control);
	return sigisemptyset(&pending);
}

struct mnt_idmap *rust_helper_mnt_idmap(const struct vfsmount *mnt)
{
	return mnt_idmap(mnt);
}

void rust_helper_inode_lock_nested(struct inode *inode, unsigned int subclass)
{
	inode_lock_nested(inode, subclass);
}

void rust_helper_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void rust_helper_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

void rust_helper_inode_lock_shared(struct inode *inode)
{
	inode_lock_shared(inode);
}

void rust_helper_inode_unlock_shared(struct inode *inode)
{
	inode_unlock_shared(inode);
}

void rust_helper_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

/* True when the inode's file system keeps POSIX ACLs. */
bool rust_helper_usac_keeps_acls(const struct inode *inode)
{
	return IS_POSIXACL(inode);
}

/* True when the inode's file system keeps extended attributes. */
bool rust_helper_usac_keeps_xattrs(const struct inode *inode)
{
	return inode->i_opflags & IOP_XATTR;
}

bool rust_helper_inode_is_open_for_write(const struct inode *inode)
{
	return inode_is_open_for_write(inode);
}

const struct cred *rust_helper_get_current_cred(void)
{
	return get_current_cred();
}

const struct cred *rust_helper_get_cred(const struct cred *cred)
{
	return get_cred(cred);
}

void rust_helper_put_cred(const struct cred *cred)
{
	put_cred(cred);
}

void rust_helper_do_delayed_call(struct delayed_call *call)
{
	do_delayed_call(call);
}

void rust_helper_ratelimit_state_init(struct ratelimit_state *rs, int interval,
				      int burst)
{
	ratelimit_state_init(rs, interval, burst);
}

/*
 * Woken when a call let go of its pair (after its last save, which may end
 * after the system call returned): an unmount waits for the calls on its
 * mount, a new call for the pair it shares with one ending.
 */
DECLARE_WAIT_QUEUE_HEAD(usac_call_ended_wq);
static atomic_t usac_calls_ended = ATOMIC_INIT(0);

void rust_helper_usac_call_ended(void)
{
	atomic_inc(&usac_calls_ended);
	wake_up_all(&usac_call_ended_wq);
}

int rust_helper_usac_calls_ended(void)
{
	return atomic_read(&usac_calls_ended);
}

/* Sleeps until a call ended after @seen was read; -ERESTARTSYS on a signal. */
int rust_helper_usac_wait_call_ended(int seen)
{
	return wait_event_interruptible(usac_call_ended_wq,
					atomic_read(&usac_calls_ended) != seen);
}

void rust_helper_usac_cond_resched(void)
{
	cond_resched();
}

/* Guards the table of live real_time_sync(2) calls kept by the Rust core. */
static DEFINE_MUTEX(usac_registry_mutex);

void rust_helper_usac_registry_lock(void)
{
	mutex_lock(&usac_registry_mutex);
}

void rust_helper_usac_registry_unlock(void)
{
	mutex_unlock(&usac_registry_mutex);
}

/*
 * The memory cgroup of current, counted: what the sync thread and the
 * event handler charge their allocations to, as inotify does.
 */
struct mem_cgroup *rust_helper_usac_memcg_of_current(void)
{
	return get_mem_cgroup_from_current();
}

void rust_helper_usac_memcg_put(struct mem_cgroup *memcg)
{
	mem_cgroup_put(memcg);
}

struct mem_cgroup *rust_helper_usac_set_active_memcg(struct mem_cgroup *memcg)
{
	return set_active_memcg(memcg);
}

/* The group's memcg is put when the group is freed. */
void rust_helper_usac_group_charge_current(struct fsnotify_group *group)
{
	group->memcg = get_mem_cgroup_from_current();
}

struct mem_cgroup *rust_helper_usac_group_memcg(struct fsnotify_group *group)
{
	return group->memcg;
}

/*
 * How @dentry, found by a lookup of @name (@len bytes), is named now: 0
 * exactly so; 1 under another spelling that its file system takes for the
 * same name (it folds case); -1 under another name (renamed since).
 */
int rust_helper_usac_dentry_spelling(struct dentry *dentry,
				     const unsigned char *name, unsigned int len)
{
	struct qstr asked = QSTR_INIT(name, len);
	int spelling;

	spin_lock(&dentry->d_lock);
	if (dentry->d_name.len == len && !memcmp(dentry->d_name.name, name, len))
		spelling = 0;
	else if (d_same_name(dentry, dentry->d_parent, &asked))
		spelling = 1;
	else
		spelling = -1;
	spin_unlock(&dentry->d_lock);
	return spelling;
}

/*
 * syncfs(2) of @sb; -EBUSY instead of waiting while an unmount or a
 * remount holds it (the unmount may be waiting for our thread).
 */
int rust_helper_usac_sync_fs(struct super_block *sb)
{
	int ret;

	if (!down_read_trylock(&sb->s_umount))
		return -EBUSY;
	ret = sync_filesystem(sb);
	up_read(&sb->s_umount);
	return ret;
}

/* True when the mount or the file system of @path is read-only. */
bool rust_helper_usac_read_only(const struct path *path)
{
	return __mnt_is_readonly(path->mnt);
}

/*
 * True while someone holds @inode's lock: notify_change() reports a
 * truncate under it, write(2) its writes after dropping it.
 */
bool rust_helper_usac_inode_is_locked(struct inode *inode)
{
	return inode_is_locked(inode);
}

struct file *rust_helper_usac_file_get(struct file *file)
{
	return get_file(file);
}

/* True when fsync on @file has nothing to do (tmpfs, ramfs). */
bool rust_helper_usac_fsync_is_noop(const struct file *file)
{
	return file->f_op->fsync == noop_fsync;
}

/* Lets the current kthread take SIGKILL: its throttled writes then end. */
void rust_helper_usac_allow_sigkill(void)
{
	allow_signal(SIGKILL);
}
