/**
 * The pages in the navigation, in order. A new page (integrations, users) is one
 * entry here and one route in ``routes.tsx``; ``permission`` hides it from roles that may not
 * use it (the API refuses them anyway).
 */
import {
  BarChart3,
  Bot,
  Gauge,
  KeyRound,
  type LucideIcon,
  PlayCircle,
  ScrollText,
  Settings,
  Webhook,
  Workflow,
} from "lucide-react";
import type { Permission } from "../auth/session";

export interface NavItem {
  to: string;
  label: string;
  icon: LucideIcon;
  permission?: Permission;
}

export const navigation: NavItem[] = [
  { to: "/dashboard", label: "Overview", icon: Gauge },
  { to: "/runs", label: "Runs", icon: PlayCircle },
  { to: "/workflows", label: "Workflows", icon: Workflow },
  { to: "/agents", label: "Agents", icon: Bot },
  { to: "/analytics", label: "Analytics", icon: BarChart3 },
  { to: "/api-keys", label: "API keys", icon: KeyRound, permission: "admin" },
  { to: "/webhooks", label: "Webhooks", icon: Webhook, permission: "admin" },
  { to: "/audit", label: "Audit log", icon: ScrollText, permission: "admin" },
  { to: "/settings", label: "Settings", icon: Settings },
];
