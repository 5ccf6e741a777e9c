/** How the engine's HTTP routers answer errors: one place, using the shared error kinds. */
import type { ErrorRequestHandler } from 'express';
import { httpStatusOf, publicMessageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';

export function errorResponder(log: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const status = httpStatusOf(error);
    if (status >= 500) log.error({ err: error, path: req.path }, 'engine_http_error');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).type('text/plain').send(publicMessageOf(error));
  };
}
