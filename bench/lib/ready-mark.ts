/** What ready-probe prints, followed by the pid, when a process starts listening. */
export const READY_MARK = 'bench-ready';
