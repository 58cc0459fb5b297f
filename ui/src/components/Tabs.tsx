import { clsx } from "clsx";
import { Tabs as RadixTabs } from "radix-ui";
import type { ReactNode } from "react";

export interface TabDef {
  id: string;
  label: ReactNode;
  content: ReactNode;
}

/** Tabs (Radix: arrow keys move between them, the panel is labelled by its tab). */
export function Tabs({
  tabs,
  value,
  onValueChange,
  label,
}: {
  tabs: TabDef[];
  value?: string;
  onValueChange?: (value: string) => void;
  label: string;
}) {
  return (
    <RadixTabs.Root
      defaultValue={value === undefined ? tabs[0]?.id : undefined}
      value={value}
      onValueChange={onValueChange}
    >
      <RadixTabs.List aria-label={label} className="flex gap-1 overflow-x-auto border-b border-slate-200">
        {tabs.map((tab) => (
          <RadixTabs.Trigger
            key={tab.id}
            value={tab.id}
            className={clsx(
              "-mb-px border-b-2 border-transparent px-3 py-2 text-sm font-medium whitespace-nowrap text-slate-600",
              "hover:text-slate-900 data-[state=active]:border-indigo-600 data-[state=active]:text-indigo-800",
            )}
          >
            {tab.label}
          </RadixTabs.Trigger>
        ))}
      </RadixTabs.List>
      {tabs.map((tab) => (
        <RadixTabs.Content key={tab.id} value={tab.id} className="pt-4">
          {tab.content}
        </RadixTabs.Content>
      ))}
    </RadixTabs.Root>
  );
}
