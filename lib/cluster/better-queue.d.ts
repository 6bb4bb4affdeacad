// Minimal typing of the parts of better-queue that the migration queue uses
// (@types/better-queue is not a dependency).
declare module 'better-queue' {
  namespace BetterQueue {
    interface QueueOptions<T> {
      process: (task: T, callback: (error?: unknown, result?: unknown) => void) => void;
      concurrent?: number;
      maxRetries?: number;
      retryDelay?: number;
      maxTimeout?: number;
      id?: string | ((task: T, callback: (error: unknown, id: string) => void) => void);
      merge?: (oldTask: T, newTask: T, callback: (error: unknown, merged: T) => void) => void;
      autoResume?: boolean;
      setImmediate?: (callback: () => void) => unknown;
    }
  }
  class BetterQueue<T = unknown> {
    constructor(options: BetterQueue.QueueOptions<T>);
    push(task: T, callback?: (error?: unknown, result?: unknown) => void): unknown;
    cancel(taskId: string, callback?: () => void): void;
    destroy(callback?: () => void): void;
    pause(): void;
    resume(): void;
    getStats(): { total: number; average: number; successRate: number; peak: number };
    on(event: string, listener: (...args: unknown[]) => void): this;
    readonly length: number;
  }
  export = BetterQueue;
}
