import { edgesOf, layout, stepsOfDefinition } from "./stepGraph";

describe("stepsOfDefinition", () => {
  it("turns next_step and depends_on into dependencies", () => {
    const steps = stepsOfDefinition({
      a: { agent_name: "echo", next_step: "b" },
      b: { agent_name: "echo" },
      c: { agent_name: "echo", depends_on: ["a", "b"] },
    });
    expect(steps.map((s) => [s.id, s.dependsOn])).toEqual([
      ["a", []],
      ["b", ["a"]],
      ["c", ["a", "b"]],
    ]);
    expect(edgesOf(steps).map((e) => e.id)).toEqual(["a->b", "a->c", "b->c"]);
  });

  it("shows a step that is referred to but not defined as missing", () => {
    const steps = stepsOfDefinition({ a: { agent_name: "echo", next_step: "ghost" } });
    expect(steps.find((s) => s.id === "ghost")).toMatchObject({ missing: true, dependsOn: ["a"] });
  });

  it("draws a cycle instead of failing on it", () => {
    const steps = stepsOfDefinition({ a: { next_step: "b" }, b: { next_step: "a" } });
    expect(edgesOf(steps)).toHaveLength(2);
    expect(layout(steps)).toHaveLength(2);
  });

  it("skips what is not a step map while the text is being typed", () => {
    expect(stepsOfDefinition(null)).toEqual([]);
    expect(stepsOfDefinition(["a"])).toEqual([]);
    expect(stepsOfDefinition({ a: 3 })).toEqual([{ id: "a", agent: null, kind: "agent", signal: null, dependsOn: [] }]);
  });

  it("knows control-flow steps by their type and follows an if's and a switch's branches", () => {
    const steps = stepsOfDefinition({
      ask: { type: "signal", signal: "approval", next_step: "decide" },
      decide: { type: "if", condition: "steps.ask.output.ok", then: "yes", else: "no" },
      route: { type: "switch", on: "input.kind", cases: { a: "yes" }, default: "no", depends_on: ["decide"] },
      yes: { agent_name: "echo" },
      no: { agent_name: "echo" },
    });
    expect(steps.find((s) => s.id === "ask")).toMatchObject({ kind: "signal", signal: "approval" });
    expect(edgesOf(steps).map((e) => e.id).sort()).toEqual(
      ["ask->decide", "decide->no", "decide->route", "decide->yes", "route->no", "route->yes"].sort(),
    );
  });
});

describe("layout", () => {
  it("puts a step after the ones it depends on", () => {
    const laid = layout(stepsOfDefinition({ a: { next_step: "b" }, b: {} }));
    const [a, b] = laid;
    expect(b!.x).toBeGreaterThan(a!.x);
  });
});
