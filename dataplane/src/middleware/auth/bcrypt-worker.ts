/**
 * Runs in a worker thread (see bcrypt-pool.ts): one bcrypt comparison per task. bcryptjs is pure
 * JavaScript and a cost-10 hash takes ~70 ms of CPU; here that time is off the event loop.
 */
import bcrypt from "bcryptjs";

export default function compare(task: { password: string; hash: string }): boolean {
  return bcrypt.compareSync(task.password, task.hash);
}
