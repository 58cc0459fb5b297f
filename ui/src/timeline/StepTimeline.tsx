import {
  BarElement,
  CategoryScale,
  Chart as ChartJS,
  type ChartOptions,
  LinearScale,
  Tooltip,
} from "chart.js";
import { useEffect, useMemo, useState } from "react";
import { Bar as BarChart } from "react-chartjs-2";
import type { StepExecution } from "../api/types";
import { formatDuration } from "../components/Time";
import { TONE_COLOURS, statusLook } from "../status/statuses";
import { timelineBars } from "./bars";

ChartJS.register(BarElement, CategoryScale, LinearScale, Tooltip);

/**
 * The run as a Gantt chart (Chart.js floating bars, as Airflow's): a row per step, a bar per
 * attempt coloured by its outcome. A table with the same bars follows for screen readers.
 */
export function StepTimeline({
  steps,
  runStart,
  live,
}: {
  steps: StepExecution[];
  runStart: string | null;
  live: boolean;
}) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    const timer = window.setInterval(() => setNow(Date.now()), 500);
    return () => window.clearInterval(timer);
  }, [live]);

  const bars = useMemo(() => timelineBars(steps, runStart, now), [steps, runStart, now]);
  const rows = steps.map((s) => s.step_id);
  const maxAttempts = Math.max(1, ...bars.map((b) => b.attempt));
  const data = {
    labels: rows,
    datasets: Array.from({ length: maxAttempts }, (_, index) => {
      const mine = bars.filter((b) => b.attempt === index + 1);
      return {
        label: `Attempt ${index + 1}`,
        data: mine.map((b) => ({ x: [b.start, Math.max(b.end, b.start + 15)], y: b.step })),
        backgroundColor: mine.map((b) => TONE_COLOURS[statusLook(b.outcome).tone]),
        borderRadius: 3,
        borderSkipped: false,
        grouped: false,
        barPercentage: 0.7,
        categoryPercentage: 0.9,
      };
    }),
  };
  const options: ChartOptions<"bar"> = {
    indexAxis: "y",
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    parsing: { xAxisKey: "x", yAxisKey: "y" },
    scales: {
      x: {
        type: "linear",
        min: 0,
        ticks: { callback: (value) => formatDuration(Number(value)) },
        title: { display: true, text: "since the run started" },
      },
      y: { type: "category", ticks: { font: { family: "ui-monospace, monospace" } } },
    },
    plugins: {
      legend: { display: false },
      tooltip: {
        callbacks: {
          label: (context) => {
            const bar = bars.filter((b) => b.attempt === context.datasetIndex + 1)[context.dataIndex];
            if (!bar) return "";
            return `attempt ${bar.attempt}: ${statusLook(bar.outcome).label}, ${formatDuration(bar.end - bar.start)}`;
          },
        },
      },
    },
  };

  if (bars.length === 0) {
    return <p className="py-6 text-sm text-slate-600">No step has started yet.</p>;
  }
  return (
    <div>
      <div style={{ height: Math.max(120, rows.length * 34 + 60) }} aria-hidden="true">
        <BarChart data={data as never} options={options} />
      </div>
      <div className="sr-only">
      <table>
        <caption>Step attempts over time</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Attempt</th>
            <th scope="col">Outcome</th>
            <th scope="col">Started after</th>
            <th scope="col">Took</th>
          </tr>
        </thead>
        <tbody>
          {bars.map((bar) => (
            <tr key={`${bar.step}:${bar.attempt}`}>
              <td>{bar.step}</td>
              <td>{bar.attempt}</td>
              <td>{statusLook(bar.outcome).label}</td>
              <td>{formatDuration(bar.start)}</td>
              <td>{bar.open ? "still running" : formatDuration(bar.end - bar.start)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </div>
  );
}
