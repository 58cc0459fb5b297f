import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";
import { useCredential } from "./session";

/** Everything but the sign-in page: without a credential, go and get one, then come back. */
export function RequireSignIn({ children }: { children: ReactNode }) {
  const credential = useCredential();
  const location = useLocation();
  if (credential === null) {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={`/sign-in?next=${encodeURIComponent(next)}`} replace />;
  }
  return <>{children}</>;
}
