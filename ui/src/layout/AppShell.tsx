import { clsx } from "clsx";
import { LogOut, Menu, X } from "lucide-react";
import { Dialog as RadixDialog } from "radix-ui";
import { Suspense, useState } from "react";
import { NavLink, Outlet, useLocation } from "react-router";
import { endSession } from "../auth/tokens";
import { allows, useWhoAmI } from "../auth/session";
import { Loading } from "../components/Notice";
import { navigation } from "./navigation";

function Brand() {
  return (
    <span className="flex items-center gap-2 text-lg font-semibold tracking-tight text-white">
      <img src="/ui/favicon.svg" alt="" className="size-7" />
      flowledger
    </span>
  );
}

function NavLinks({ onNavigate }: { onNavigate?: () => void }) {
  const { data: whoami } = useWhoAmI();
  const items = navigation.filter((item) => !item.permission || allows(whoami, item.permission));
  return (
    <ul className="space-y-1">
      {items.map((item) => (
        <li key={item.to}>
          <NavLink
            to={item.to}
            onClick={onNavigate}
            className={({ isActive }) =>
              clsx(
                "flex items-center gap-3 rounded-md px-3 py-2 text-sm font-medium",
                isActive ? "bg-indigo-800 text-white" : "text-indigo-100 hover:bg-indigo-800/60 hover:text-white",
              )
            }
          >
            <item.icon aria-hidden="true" className="size-4" />
            {item.label}
          </NavLink>
        </li>
      ))}
    </ul>
  );
}

function Who() {
  const { data } = useWhoAmI();
  return (
    <div className="border-t border-indigo-800 px-3 pt-3 text-xs text-indigo-100">
      {data && (
        <p className="mb-2 truncate" title={data.actor}>
          Signed in as <span className="font-semibold text-white">{data.role}</span>
          <br />
          <span className="font-mono">{data.actor}</span>
        </p>
      )}
      <button
        type="button"
        onClick={() => void endSession()}
        className="flex items-center gap-2 rounded-md px-2 py-1.5 text-sm font-medium text-indigo-100 hover:bg-indigo-800 hover:text-white"
      >
        <LogOut aria-hidden="true" className="size-4" /> Sign out
      </button>
    </div>
  );
}

/** Navigation beside the page on a laptop, behind a menu button on a phone. */
export function AppShell() {
  const [menuOpen, setMenuOpen] = useState(false);
  const location = useLocation();
  return (
    <div className="min-h-screen lg:flex">
      <a
        href="#main"
        className="sr-only z-50 rounded bg-white px-3 py-2 text-sm font-medium text-indigo-800 focus:not-sr-only focus:fixed focus:top-2 focus:left-2"
      >
        Skip to content
      </a>
      <aside className="hidden w-60 shrink-0 flex-col gap-6 bg-indigo-950 px-3 py-5 lg:sticky lg:top-0 lg:flex lg:h-screen">
        <div className="px-3">
          <Brand />
        </div>
        <nav aria-label="Main" className="flex-1">
          <NavLinks />
        </nav>
        <Who />
      </aside>
      <header className="sticky top-0 z-30 flex items-center justify-between bg-indigo-950 px-4 py-3 lg:hidden">
        <Brand />
        <RadixDialog.Root open={menuOpen} onOpenChange={setMenuOpen}>
          <RadixDialog.Trigger className="rounded-md p-2 text-indigo-100 hover:bg-indigo-800" aria-label="Open the menu">
            <Menu aria-hidden="true" className="size-6" />
          </RadixDialog.Trigger>
          <RadixDialog.Portal>
            <RadixDialog.Overlay className="fixed inset-0 z-40 bg-slate-900/50" />
            <RadixDialog.Content className="fixed inset-y-0 right-0 z-50 flex w-72 max-w-[85vw] flex-col gap-6 bg-indigo-950 px-3 py-5">
              <div className="flex items-center justify-between px-3">
                <RadixDialog.Title asChild>
                  <span className="text-lg font-semibold text-white">Menu</span>
                </RadixDialog.Title>
                <RadixDialog.Close className="rounded-md p-1 text-indigo-100 hover:bg-indigo-800" aria-label="Close the menu">
                  <X aria-hidden="true" className="size-6" />
                </RadixDialog.Close>
              </div>
              <RadixDialog.Description className="sr-only">The dashboard's pages</RadixDialog.Description>
              <nav aria-label="Main" className="flex-1">
                <NavLinks onNavigate={() => setMenuOpen(false)} />
              </nav>
              <Who />
            </RadixDialog.Content>
          </RadixDialog.Portal>
        </RadixDialog.Root>
      </header>
      <main id="main" tabIndex={-1} className="min-w-0 flex-1 px-4 py-5 sm:px-6 lg:px-8 lg:py-8">
        <Suspense fallback={<Loading />} key={location.pathname}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
