import { formatDuration } from "./Time";

describe("formatDuration", () => {
  it.each([
    [null, "—"],
    [12, "12 ms"],
    [1500, "1.50 s"],
    [42_000, "42.0 s"],
    [125_000, "2 min 5 s"],
    [3_725_000, "1 h 2 min"],
  ])("%s ms reads %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
