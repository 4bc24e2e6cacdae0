/** Whether Intl knows `timezone` as an IANA zone name (schedules and `restore --timezone`). */
export function isValidTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}
