import { statusLook, TONE_CLASSES, TONE_COLOURS } from "./statuses";

describe("statusLook", () => {
  it("knows the run and step statuses", () => {
    expect(statusLook("SUCCEEDED")).toMatchObject({ tone: "success", label: "Succeeded" });
    expect(statusLook("FAILED").tone).toBe("danger");
    expect(statusLook("RUNNING").active).toBe(true);
    expect(statusLook("CANCELLED").active).toBeUndefined();
  });

  it("gives the control-flow statuses their own colours, still live", () => {
    expect(statusLook("WAITING")).toMatchObject({ tone: "waiting", label: "Waiting", active: true });
    expect(statusLook("PAUSED")).toMatchObject({ tone: "paused", label: "Paused", active: true });
    expect(TONE_CLASSES.paused.badge).not.toBe(TONE_CLASSES.waiting.badge);
  });

  it("shows a status it does not know as it is, in a neutral tone", () => {
    expect(statusLook("WAITING_FOR_APPROVAL")).toEqual({
      tone: "neutral",
      label: "Waiting for approval",
    });
    expect(statusLook(undefined).label).toBe("Unknown");
  });

  it("has classes and a colour for every tone", () => {
    expect(Object.keys(TONE_CLASSES).sort()).toEqual(Object.keys(TONE_COLOURS).sort());
  });
});
