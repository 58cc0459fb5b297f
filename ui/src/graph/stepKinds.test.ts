import { instanceOf, kindLook, stepSummary } from "./stepKinds";

describe("step kinds", () => {
  it("labels every kind of control-flow step, and an unknown one by its name", () => {
    expect(kindLook("foreach").label).toBe("For each");
    expect(kindLook("do_while").label).toBe("Do while");
    expect(kindLook(undefined).label).toBe("Agent");
    expect(kindLook("human_task").label).toBe("human task");
    expect(kindLook("signal").Icon).not.toBe(kindLook("wait").Icon);
  });

  it("reads a map's or loop's instance from its id", () => {
    expect(instanceOf("each[2].shout")).toEqual({ parent: "each", index: 2, step: "shout" });
    expect(instanceOf("outer[0].inner[1].leaf")).toEqual({ parent: "outer[0].inner", index: 1, step: "leaf" });
    expect(instanceOf("plain")).toBeNull();
  });

  it("sums a step up by what it does", () => {
    expect(stepSummary({ kind: "agent", agent: "echo" })).toBe("agent echo");
    expect(stepSummary({ kind: "signal", signal: "approve" })).toBe("signal “approve”");
    expect(stepSummary({ kind: "wait" })).toBe("Wait");
  });
});
