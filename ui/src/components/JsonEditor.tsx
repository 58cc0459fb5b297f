import { json, jsonParseLinter } from "@codemirror/lang-json";
import { type Diagnostic, lintGutter, linter, setDiagnostics } from "@codemirror/lint";
import { EditorView } from "@codemirror/view";
import CodeMirror, { type ReactCodeMirrorRef } from "@uiw/react-codemirror";
import { forwardRef, useEffect, useImperativeHandle, useMemo, useRef } from "react";

export interface EditorProblem {
  from: number;
  to: number;
  message: string;
}

export interface JsonEditorHandle {
  /** Put the cursor on a span and scroll it into view (a problem's "show me"). */
  reveal: (from: number, to: number) => void;
}

/**
 * JSON text with syntax checking as you type and, marked at their place, the problems the
 * server found (``problems``). Tab moves focus on (it does not indent), so keyboard users are
 * never trapped in the editor.
 */
export const JsonEditor = forwardRef<
  JsonEditorHandle,
  {
    value: string;
    onChange: (value: string) => void;
    problems: EditorProblem[];
    label: string;
    height?: string;
  }
>(function JsonEditor({ value, onChange, problems, label, height = "28rem" }, handle) {
  const ref = useRef<ReactCodeMirrorRef>(null);
  const extensions = useMemo(
    () => [
      json(),
      linter(jsonParseLinter(), { delay: 300 }),
      lintGutter(),
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ "aria-label": label }),
    ],
    [label],
  );

  useEffect(() => {
    const view = ref.current?.view;
    if (!view) return;
    const length = view.state.doc.length;
    const diagnostics: Diagnostic[] = problems.map((p) => ({
      from: Math.min(p.from, length),
      to: Math.min(Math.max(p.to, p.from), length),
      severity: "error",
      message: p.message,
      source: "server",
    }));
    view.dispatch(setDiagnostics(view.state, diagnostics));
  }, [problems]);

  useImperativeHandle(handle, () => ({
    reveal(from, to) {
      const view = ref.current?.view;
      if (!view) return;
      view.dispatch({ selection: { anchor: from, head: to }, scrollIntoView: true });
      view.focus();
    },
  }));

  return (
    <div className="overflow-hidden rounded-md text-sm ring-1 ring-slate-300 focus-within:ring-2 focus-within:ring-indigo-600">
      <CodeMirror
        ref={ref}
        value={value}
        onChange={onChange}
        extensions={extensions}
        height={height}
        indentWithTab={false}
        basicSetup={{ foldGutter: true, highlightActiveLine: true, autocompletion: false }}
      />
    </div>
  );
});
