// racecorpus: Go map races and their correctly synchronised twins, one case per argument.
//
//	racecorpus -list   prints one line per case: "NAME racy" or "NAME clean"
//	racecorpus NAME    runs that case and exits 0
//
// The two accesses of a racy case never overlap in time (a sleep separates them), so the Go
// runtime never throws "concurrent map ..." and only happens-before analysis (go build -race, or
// mapwatch's race detector) can find them. Each source line whose map access takes part in the
// race ends in a "// race:NAME" comment: two lines, or one when a line races with itself (a helper
// called from two goroutines). The tests read these markers as the lines a race report must name.
// Clean cases carry no marker.
//
// A marked read that -race must name uses the comma-ok form (`_, _ = m[k]`) where the single-value
// form loses the line: from Go 1.27, a single-value read of a map with fast keys calls
// mapaccess2_fast* through mapaccess1_fast*, and -race then names that wrapper instead of the
// reading line.
//
// Every case makes its own maps (so each has an allocation site), uses a few keys and a few
// goroutines, and ends in well under a second. Cases are grouped by theme: the map tests of Go's
// own race detector (gorace.go), goroutine creation and channels (channels.go), sync primitives
// (locks.go), publication patterns (publish.go), the clear, delete and make op classes (ops.go),
// deferred unlocks (defer.go), sync/atomic (atomics.go), other idioms of real code (idioms.go) and,
// built by Go 1.23 and later, coroutines (coroutines.go).
package main

import (
	"fmt"
	"os"
	"time"
)

// verdict is a case's ground truth, which `go build -race` confirms in the tests.
type verdict string

const (
	racy  verdict = "racy"
	clean verdict = "clean"
)

// corpusCase is one program of the corpus.
type corpusCase struct {
	name    string
	verdict verdict
	run     func()
}

var corpus = []corpusCase{
	// gorace.go: Go's own race detector tests for maps.
	{"gorace_rw", racy, goraceRW},
	{"gorace_rw2", racy, goraceRW2},
	{"gorace_rwarray", racy, goraceRWArray},
	{"gorace_range", racy, goraceRange},
	{"gorace_range2", racy, goraceRange2},
	{"gorace_delete", racy, goraceDelete},
	{"gorace_map_rr", clean, goraceMapRR},
	{"gorace_map_range_range", clean, goraceMapRangeRange},

	// channels.go: goroutine creation, channel hand-off, close, select, semaphores.
	{"spawn_parent_writes", clean, spawnParentWrites},
	{"spawn_child_writes", racy, spawnChildWrites},
	{"chan_unbuffered_handoff", clean, chanUnbufferedHandoff},
	{"chan_unbuffered_reverse", clean, chanUnbufferedReverse},
	{"chan_unbuffered_write_after_send", racy, chanUnbufferedWriteAfterSend},
	{"chan_buffered_handoff", clean, chanBufferedHandoff},
	{"chan_buffered_write_after_send", racy, chanBufferedWriteAfterSend},
	{"chan_close", clean, chanClose},
	{"chan_write_after_close", racy, chanWriteAfterClose},
	{"select_handoff", clean, selectHandoff},
	{"select_default", racy, selectDefault},
	{"semaphore", clean, semaphore},
	{"semaphore_too_wide", racy, semaphoreTooWide},
	{"chan_buffered_blocked_send", clean, chanBufferedBlockedSend},
	{"chan_buffered_after_handoff", clean, chanBufferedAfterHandoff},
	{"chan_buffered_recv_then_send", racy, chanBufferedRecvThenSend},
	{"chan_semaphore_contended", clean, chanSemaphoreContended},
	{"chan_try_acquire_too_wide", racy, chanTryAcquireTooWide},
	{"chan_poll_closed", clean, chanPollClosed},

	// locks.go: WaitGroup, Mutex, RWMutex, Once.
	{"waitgroup_join", clean, waitGroupJoin},
	{"waitgroup_read_before_wait", racy, waitGroupReadBeforeWait},
	{"mutex_guarded", clean, mutexGuarded},
	{"mutex_unguarded_reader", racy, mutexUnguardedReader},
	{"mutex_two_locks", racy, mutexTwoLocks},
	{"rwmutex_readers_writer", clean, rwMutexReadersWriter},
	{"rwmutex_write_under_rlock", racy, rwMutexWriteUnderRLock},
	{"once_init", clean, onceInit},
	{"once_write_after_init", racy, onceWriteAfterInit},

	// publish.go: atomic.Value copy-on-write, sync.Map, an actor goroutine.
	{"atomic_value_cow", clean, atomicValueCopyOnWrite},
	{"atomic_value_mutate_in_place", racy, atomicValueMutateInPlace},
	{"syncmap_values", clean, syncMapValues},
	{"syncmap_value_mutated", racy, syncMapValueMutated},
	{"actor_owned", clean, actorOwned},
	{"actor_leaks_map", racy, actorLeaksMap},

	// ops.go: clear, delete and make.
	{"clear_under_mutex", clean, clearUnderMutex},
	{"clear_vs_read", racy, clearVsRead},
	{"range_vs_delete", racy, rangeVsDelete},
	{"make_in_worker_handoff", clean, makeInWorkerHandoff},
	{"make_in_worker_write_after_send", racy, makeInWorkerWriteAfterSend},
	{"make_address_reuse", clean, makeAddressReuse},

	// defer.go: deferred unlocks (open-coded, in loops, through sync.Locker and method values, in
	// closures, during a recovered panic) and locks taken in deferred closures.
	{"defer_unlock_method", clean, deferUnlockMethod},
	{"defer_unlock_method_unlocked_get", racy, deferUnlockMethodUnlockedGet},
	{"defer_rwmutex_store", clean, deferRWMutexStore},
	{"defer_rwmutex_write_under_rlock", racy, deferRWMutexWriteUnderRLock},
	{"defer_in_loop", clean, deferInLoop},
	{"defer_in_loop_missed_shard", racy, deferInLoopMissedShard},
	{"locker_interface", clean, lockerInterface},
	{"locker_interface_rlocker", racy, lockerInterfaceRLocker},
	{"unlock_method_value", clean, unlockMethodValue},
	{"unlock_method_value_deferred_lock", racy, unlockMethodValueDeferredLock},
	{"defer_runlock_closure", clean, deferRUnlockClosure},
	{"defer_runlock_closure_fill_on_miss", racy, deferRUnlockClosureFillOnMiss},
	{"defer_unlock_recovered_panic", clean, deferUnlockRecoveredPanic},
	{"defer_unlock_recovered_panic_unlocked_handler", racy, deferUnlockRecoveredPanicUnlockedHandler},
	{"lock_in_deferred_closure", clean, lockInDeferredClosure},
	{"deferred_closure_unlocked", racy, deferredClosureUnlocked},

	// atomics.go: typed atomics and the function forms of sync/atomic as publication flags,
	// counters, claims and copy-on-write pointers.
	{"atomic_bool_ready", clean, atomicBoolReady},
	{"atomic_bool_set_early", racy, atomicBoolSetEarly},
	{"atomic_int32_state", clean, atomicInt32State},
	{"atomic_int32_wrong_state", racy, atomicInt32WrongState},
	{"atomic_int64_done", clean, atomicInt64Done},
	{"atomic_int64_counted_at_start", racy, atomicInt64CountedAtStart},
	{"atomic_uint64_generation", clean, atomicUint64Generation},
	{"atomic_uint64_bump_first", racy, atomicUint64BumpFirst},
	{"atomic_uint32_closed", clean, atomicUint32Closed},
	{"atomic_uint32_closed_before_flush", racy, atomicUint32ClosedBeforeFlush},
	{"atomic_uintptr_count", clean, atomicUintptrCount},
	{"atomic_uintptr_count_early", racy, atomicUintptrCountEarly},
	{"atomic_pointer_cow", clean, atomicPointerCopyOnWrite},
	{"atomic_pointer_mutate_loaded", racy, atomicPointerMutateLoaded},
	{"atomic_value_reload", clean, atomicValueReload},
	{"atomic_value_shallow_copy", racy, atomicValueShallowCopy},
	{"add_int64_done", clean, addInt64Done},
	{"add_int64_write_after_done", racy, addInt64WriteAfterDone},
	{"store_int32_flag", clean, storeInt32Flag},
	{"store_int32_read_before_check", racy, storeInt32ReadBeforeCheck},
	{"cas_claim", clean, casClaim},
	{"cas_claim_no_wait", racy, casClaimNoWait},
	{"swap_int64_pending", clean, swapInt64Pending},
	{"swap_int64_count_first", racy, swapInt64CountFirst},

	// idioms.go: Once and OnceFunc/OnceValue(s), Cond, context, worker pools, fan-out, timers,
	// sync.Pool, select default, request/reply, init goroutines, generic and embedded-mutex types,
	// lock wrappers, maps.Clone and map literals.
	{"once_package_map", clean, oncePackageMap},
	{"once_package_map_register", racy, oncePackageMapRegister},
	{"once_func", clean, onceFunc},
	{"once_func_not_called", racy, onceFuncNotCalled},
	{"once_value", clean, onceValue},
	{"once_value_mutated", racy, onceValueMutated},
	{"once_values", clean, onceValues},
	{"once_values_deleted", racy, onceValuesDeleted},
	{"cond_signal", clean, condSignal},
	{"cond_signal_read_after_unlock", racy, condSignalReadAfterUnlock},
	{"cond_broadcast", clean, condBroadcast},
	{"cond_broadcast_fill_after", racy, condBroadcastFillAfter},
	{"context_cancel", clean, contextCancel},
	{"context_cancel_write_after", racy, contextCancelWriteAfter},
	{"worker_pool", clean, workerPool},
	{"worker_pool_update_while_running", racy, workerPoolUpdateWhileRunning},
	{"errgroup_fan_out", clean, errgroupFanOut},
	{"errgroup_return_on_first_error", racy, errgroupReturnOnFirstError},
	{"after_func", clean, afterFunc},
	{"after_func_write_after_arm", racy, afterFuncWriteAfterArm},
	{"timer_timeout", clean, timerTimeout},
	{"timer_timeout_read_partial", racy, timerTimeoutReadPartial},
	{"sync_pool", clean, syncPool},
	{"sync_pool_counting_new", racy, syncPoolCountingNew},
	{"select_default_token", clean, selectDefaultToken},
	{"select_default_read_anyway", racy, selectDefaultReadAnyway},
	{"request_reply", clean, requestReply},
	{"request_reply_snapshot", racy, requestReplySnapshot},
	{"init_goroutine", clean, initGoroutine},
	{"init_goroutine_no_wait", racy, initGoroutineNoWait},
	{"generic_safe_map", clean, genericSafeMap},
	{"generic_safe_map_leaked", racy, genericSafeMapLeaked},
	{"embedded_mutex", clean, embeddedMutex},
	{"embedded_mutex_unlocked_reader", racy, embeddedMutexUnlockedReader},
	{"lock_wrappers", clean, lockWrappers},
	{"lock_wrapper_takes_rlock", racy, lockWrapperTakesRLock},
	{"maps_clone_handoff", clean, mapsCloneHandoff},
	{"maps_clone_no_wait", racy, mapsCloneNoWait},
	{"map_literal_guarded", clean, mapLiteralGuarded},
	{"map_literal_unguarded", racy, mapLiteralUnguarded},
}

// gap separates the two accesses of a racy case in time: long enough that they never overlap even
// on a loaded machine (so the runtime never throws), short enough that the corpus runs in seconds.
// Sleeping creates no happens-before edge, for -race as for the Go memory model.
const gap = 30 * time.Millisecond

// pause lets the other goroutine run its part first.
func pause() { time.Sleep(gap) }

// fill puts a few keys in m, so cases use maps past their first insert.
func fill(m map[int]int) {
	for k := 0; k < 8; k++ {
		m[k] = k * k
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: racecorpus -list | racecorpus NAME")
		os.Exit(2)
	}
	arg := os.Args[1]
	if arg == "-list" {
		for _, c := range corpus {
			fmt.Printf("%s %s\n", c.name, c.verdict)
		}
		return
	}
	for _, c := range corpus {
		if c.name == arg {
			c.run()
			fmt.Printf("%s done\n", c.name)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "racecorpus: no case %q (racecorpus -list names them)\n", arg)
	os.Exit(2)
}
