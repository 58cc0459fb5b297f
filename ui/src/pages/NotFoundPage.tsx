import { ButtonLink } from "../components/Button";
import { PageHeader } from "../components/Card";

export default function NotFoundPage() {
  return (
    <div>
      <PageHeader title="Nothing here" subtitle="This page does not exist in the dashboard." />
      <ButtonLink to="/dashboard" variant="primary">
        Go to the overview
      </ButtonLink>
    </div>
  );
}
