import { runServer } from './cluster/cluster.bootstrap';
import { ConfigValidationError, validateConfig } from './config/app.config';

function loadConfig() {
  try {
    return validateConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigValidationError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

runServer(loadConfig()).catch((error: unknown) => {
  console.error(`Failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
